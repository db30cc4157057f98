"""Every setting of the services, typed, each with its one default: parsed once per service at start.

config.yml passes each setting through from the environment (``${VAR}``, no
default there); an unset or empty value takes the default stated here, and
docs/deployment.md's table says the same (tests/unit/test_settings.py checks
it).  A value that does not parse stops the service at start with a
``SettingError`` naming the setting: ``RUN_MAX_TIMES='abc': must be an integer
of at least 1``.  ``0`` means the default for no setting: where it is allowed,
it means what the field's comment says (off, no wait, kept for ever).

Only the keys nameko itself reads (AMQP_URI, HEARTBEAT, max_workers,
WEB_SERVER_ADDRESS, DB_URIS, LOGGING) keep their defaults in config.yml.

A service reads its settings with ``shared.extensions.Settings`` (a dependency)
or ``settings_of(container)`` in its extensions' ``setup``.
"""
import ipaddress
from typing import Annotated, Literal, get_args

from annotated_types import Ge, Gt, Le
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import ValidationError as PydanticError

from shared.errors import ValidationError
from shared.validation import memory_bytes

OFF = ("off", "false", "0", "no")
ON = ("on", "true", "1", "yes")
SESSION_SECONDS_MAX = 366 * 24 * 3600
DEFAULT_NETWORK = "stevedore"


class SettingError(ValueError):
    """A setting a service cannot start with; the message names it."""


# ------------------------------------------------------------------ value types

def _switch(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in OFF or text in ON:
        return text in ON
    raise ValueError("must be on or off")


def _size(value):
    if value is None:
        return None
    try:
        return memory_bytes(str(value).strip())
    except ValidationError as exc:
        raise ValueError(exc.message) from None


def _networks(value):
    networks = []
    for item in str(value).split(","):
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"{item.strip()!r} is not an address or network") from None
    return tuple(networks)


def _items(value):
    return frozenset(item.strip() for item in str(value).split(",") if item.strip())


def _runner_labels(value):
    from stevedore_jobs.contract.fleet import parse_labels  # the rule a RUN's constraints follow
    try:
        return parse_labels(value)
    except ValueError as exc:
        raise ValueError(getattr(exc, "message", str(exc))) from None


def _runner_gpus(value):
    from stevedore_jobs.contract.fleet import parse_gpus
    try:
        return parse_gpus(value)
    except ValueError as exc:
        raise ValueError(getattr(exc, "message", str(exc))) from None


def _runner_id(value):
    """A runner's id as the runner list pages by it (``?after=``): at most 200 characters, no control
    characters and no ``/`` (empty: the host name)."""
    import re

    from stevedore_jobs.contract.fleet import RUNNER_ID_PATTERN
    value = str(value or "")
    if value and not re.fullmatch(RUNNER_ID_PATTERN[1:-1], value):
        raise ValueError("must be at most 200 characters, without control characters or '/'")
    return value


def _image_map(value):
    from shared.images import parse_image_map
    return parse_image_map(value)


def _image_registries(value):
    from shared.image_sources import parse_registries
    return parse_registries(value)


def _lower(value):
    return str(value).strip().lower()


def _network(name):
    """Refuse a network that would share the host's or another container's stack."""
    lowered = name.lower()
    if lowered == "host" or lowered.startswith("container:"):
        raise ValueError(
            f"is refused: an execution would share the network stack of "
            f"{'the host' if lowered == 'host' else 'another container'} (its interfaces, its loopback "
            f"services, its ports); use a bridge network such as {DEFAULT_NETWORK!r} (the default) or 'none'")
    return name


Switch = Annotated[bool, BeforeValidator(_switch)]
Size = Annotated[int, BeforeValidator(_size)]                   # "512m", "8g": bytes
OptionalSize = Annotated[int | None, BeforeValidator(_size)]    # empty: None
Networks = Annotated[tuple, BeforeValidator(_networks)]         # comma-separated CIDRs
Items = Annotated[frozenset, BeforeValidator(_items)]           # comma-separated words
Cpus = Annotated[float, Ge(0.01), Le(1024)]
Seconds = Annotated[float, Gt(0)]                                # an interval: never 0
Wait = Annotated[float, Ge(0)]                                   # 0: no wait
Count = Annotated[int, Ge(1)]
Port = Annotated[int, Ge(0), Le(65535)]


class Part(BaseModel):
    """Fields are named as their config.yml keys, lower-cased; unset or empty keys take the default."""

    model_config = ConfigDict(alias_generator=str.upper, frozen=True, extra="ignore",
                              validate_default=True, arbitrary_types_allowed=True)


# ------------------------------------------------------------------ parts

class Common(Part):
    rpc_timeout: Seconds = 30            # seconds an RPC call between services waits for its reply
    # the type of the durable queues of work and reports (shared/queues.py)
    queue_type: Annotated[Literal["classic", "quorum"], BeforeValidator(_lower)] = "classic"


class Events(Part):
    event_retry_seconds: Wait = 300      # a failing event's retries; 0: handed back to RabbitMQ at once


class Metrics(Part):
    metrics_port: Port = 0               # 0: no metrics server
    metrics_host: str = "0.0.0.0"


class Ceilings(Part):
    """What one RUN may ask: read by the scheduler (checks) and the gateway (its spec)."""

    run_max_times: Count = 100000
    container_max_memory: Size = "8g"
    container_max_cpus: Cpus = 4
    container_max_disk: Size = "100g"    # the most disk one RUN may ask (its ``disk``)

    @property
    def ceilings(self):
        """(the most memory in bytes, the most cpus, the most disk in bytes) one RUN may ask."""
        return self.container_max_memory, self.container_max_cpus, self.container_max_disk


class Sealing(Part):
    # a bad key is logged and turns private registries and secrets off (shared/sealing.py); held by the
    # registry (credentials), the gateway (seals secrets) and the scheduler (opens them at claim time)
    credentials_key: str = Field("", json_schema_extra={"env": "STEVEDORE_CREDENTIALS_KEY"})


class Edge(Part):
    http_idle_timeout: Seconds = 30
    http_header_timeout: Seconds = 10
    http_body_timeout: Seconds = 30
    http_max_header_bytes: Count = 16384
    http_max_body_bytes: Count = 1048576
    http_max_connections: Count = 1000
    http_max_connections_per_client: Count = 64
    http_trusted_proxies: Networks = ""
    # requests a second one client may make, on average (its principal when authenticated, else its
    # address), and how many at once after a quiet spell (services/gateway/throttle.py); 0: no limit
    http_rate_limit: Annotated[float, Ge(0)] = 100
    http_rate_burst: Count = 400
    # failed tokens and sign-ins one address may make in HTTP_AUTH_WINDOW seconds; 0: no limit
    http_auth_failures: Annotated[int, Ge(0)] = 20
    http_auth_window: Seconds = 60


class GatewaySettings(Common, Ceilings, Edge, Sealing):
    auth: Switch = Field("on", json_schema_extra={"env": "STEVEDORE_AUTH"})
    api_tokens: Items = Field("", json_schema_extra={"env": "STEVEDORE_TOKENS"})
    metrics_public: Switch = "off"
    follow_max: Annotated[int, Ge(0)] = 100         # 0: follow off
    ui_session_seconds: Annotated[int, Ge(1), Le(SESSION_SECONDS_MAX)] = 43200
    ui_session_cache_seconds: Annotated[int, Ge(0)] = 5   # 0: asks the registry every request
    # how long a principal's token is taken on the registry's word (0: asks every request); at most 1,
    # the bound on a revocation whose event is lost (services/gateway/callers.py)
    token_cache_seconds: Annotated[float, Ge(0), Le(1)] = 1
    ui_cookie_secure: Annotated[Literal["auto", "on", "off"], BeforeValidator(_lower)] = "auto"


class Lists(Part):
    # the most bytes of one page of a list (shared/pages.py), as the service that builds it counts them;
    # fewer items than asked, and a next page, past it (always at least one item)
    list_page_bytes: Annotated[int, Ge(1024)] = 4194304


class Docker(Part):
    docker_host: str = "unix:///var/run/docker.sock"


def _cache_bytes(value):
    """A size ("50g") or a plain number of bytes (0: no bound)."""
    text = str(value).strip()
    return int(text) if text.isdigit() else _size(text)


class ImageGc(Part):
    """Removing the images Stevedore pulled, least recently used first (shared/image_gc.py): each registry and
    runner sweeps its engine every IMAGE_GC_INTERVAL seconds."""

    image_gc: Switch = "on"
    image_gc_interval: Seconds = 300
    # collected when Stevedore's images hold more than HIGH percent of IMAGE_CACHE_BYTES or the engine's data
    # disk is fuller than HIGH percent; down to LOW percent of each (100: the disk's fill not looked at)
    image_gc_high_percent: Annotated[int, Ge(1), Le(100)] = 85
    image_gc_low_percent: Annotated[int, Ge(0), Le(99)] = 80
    image_cache_bytes: Annotated[int, BeforeValidator(_cache_bytes)] = "50g"  # 0: no bound but the disk's
    image_gc_min_age: Wait = 120           # seconds an image used is kept whatever the bounds
    image_gc_repositories: Items = ""      # only images all of whose names begin so; empty: every one pulled

    def check_image_gc(self):
        """Raise ``SettingError`` for a low mark not below the high one."""
        if self.image_gc_low_percent >= self.image_gc_high_percent:
            raise SettingError(f"IMAGE_GC_LOW_PERCENT={self.image_gc_low_percent!r}: must be below "
                               f"IMAGE_GC_HIGH_PERCENT ({self.image_gc_high_percent})")


class RegistrySettings(Common, Events, Metrics, Docker, ImageGc, Sealing, Lists):
    pull_timeout: Seconds = 600
    # SOURCE=TARGET rules (shared/images.py): alpine pulled from localhost:5000/library/alpine; empty: none
    image_map: Annotated[tuple, BeforeValidator(_image_map), Field(validate_default=True)] = ""
    # registry hosts images may be pulled from (shared/image_sources.py): host[:port] patterns; empty: any
    image_registries: Annotated[tuple, BeforeValidator(_image_registries), Field(validate_default=True)] = ""
    # whether they may be loopback or private addresses (link-local and metadata ones never are)
    image_registry_private: Annotated[Literal["allow", "refuse"], BeforeValidator(_lower)] = "allow"


class Webhooks(Part):
    webhook_secret: str = Field("", json_schema_extra={"env": "STEVEDORE_WEBHOOK_SECRET"})
    webhook_attempts: Count = 5
    webhook_backoff: Wait = 2
    webhook_backoff_max: Wait = 300
    webhook_timeout: Seconds = 10
    webhook_concurrency: Count = 10
    webhook_allow_networks: Networks = ""
    webhook_legacy_signature: Switch = "on"


class Polling(Part):
    runner_poll_interval: Seconds = 2    # an idle runner's slot asks for work this often


class SchedulerSettings(Common, Events, Metrics, Ceilings, Webhooks, Polling, Sealing, Lists):
    lease_seconds: Seconds = 30
    fan_out_batch: Count = 5000
    task_cache_seconds: Wait = 10          # 0: asks the registry every RUN
    sweep_interval: Seconds = 10
    result_retention_days: Wait = 30       # 0: kept for ever
    retention_sweep_interval: Seconds = 3600
    audit_retention_days: Wait = 365       # 0: kept for ever
    audit_sweep_interval: Seconds = 3600
    probe_interval: Seconds = 1
    retry_backoff: Wait = 1                # 0: retried at once
    retry_backoff_max: Wait = 300
    rerun_max: Annotated[int, Ge(1), Le(10000)] = 100  # RERUN_FAILEDs of one result (its reruns list)
    deadline_interval: Seconds = 1        # how often runs past their deadline are looked for
    schedule_interval: Seconds = 1         # how often each scheduler looks for due schedules
    schedule_allow_seconds: Switch = "off"  # testing only: a sixth cron field, seconds


def _dirs(value):
    dirs = tuple(item.strip().rstrip("/") or "/" for item in str(value).split(",") if item.strip())
    for item in dirs:
        if not item.startswith("/"):
            raise ValueError(f"{item!r} is not an absolute path")
    return dirs


Dirs = Annotated[tuple, BeforeValidator(_dirs)]                 # comma-separated absolute paths


class Tes(Part):
    """A runner's part in GA4GH TES tasks (docs/tes.md): where their files may come from and go."""

    tes_input_dirs: Dirs = ""            # file:// inputs only from under these; empty: none
    tes_output_dir: Annotated[str, BeforeValidator(lambda v: _dirs(v)[0] if _dirs(v) else "")] = ""
    tes_download_max_bytes: Size = "1g"  # of one input (a file://  DIRECTORY: all its files)
    tes_download_timeout: Seconds = 300
    tes_allow_networks: Networks = ""    # networks http(s) inputs may come from besides global addresses
    tes_log_bytes: Annotated[int, Ge(0)] = 65536  # of each executor's stdout and stderr kept in TES logs
    tes_disk_bytes: Size = "10g"         # the most a TES task may write (volumes, writable layers)


class RunnerSettings(Common, Metrics, Docker, ImageGc, Polling, Tes):
    runner_id: Annotated[str, BeforeValidator(_runner_id)] = ""  # empty: the host name
    runner_slots: Count = 1
    heartbeat_interval: Seconds = 5
    stop_grace_period: Annotated[int, Ge(0)] = 10   # 0: SIGKILL at once
    runner_stop_grace: Wait = 30
    # finished containers waiting for the background remover, per runner (services/runner/remover.py);
    # 0: each slot removes its container itself before its next claim (as before the remover)
    runner_remove_backlog: Annotated[int, Ge(0), Le(64)] = 4
    # seconds a slot running an execution may hold the next one, claimed ahead and its container created, before
    # it starts it (services/runner/ahead.py); past them it is handed back for another runner; 0: off (the
    # default: measured no faster on a saturated engine, docs/performance.md; 3 is a good value to turn it on)
    runner_prepare_ahead_seconds: Annotated[float, Ge(0), Le(60)] = 0
    reconcile_interval: Seconds = 30
    report_retry_seconds: Wait = 3600
    # a runner's start and end reports coalesced into one message (services/runner/reporting.py): how long
    # the first waits for others (0: each report its own event, as before), and how many one message holds
    runner_report_window: Annotated[float, Ge(0), Le(1)] = 0.02
    runner_report_batch: Annotated[int, Ge(1), Le(256)] = 64
    log_limit_bytes: Annotated[int, Ge(2)] = 1048576
    container_log_driver: Annotated[Literal["json-file", "local"], BeforeValidator(_lower)] = "json-file"
    container_log_max_size: Annotated[str, BeforeValidator(_lower),
                                      Field(pattern=r"^[1-9][0-9]*[kmg]$")] = "16m"
    container_log_max_files: Count = 2
    engine_patience: Wait = 120
    container_default_memory: Size = "1g"
    # what an execution may write to disk (writable layer, volumes) when its RUN gives no ``disk``
    container_default_disk: Size = "10g"
    disk_check_interval: Seconds = 2       # how often that is measured while a container runs
    disk_measure_image: str = "stevedore:local"  # an image of the engine with du: measures volumes (disk.py)
    container_pids_limit: Count = 1024
    container_profile: Annotated[Literal["default", "restricted"], BeforeValidator(_lower)] = "default"
    container_tmp_size: Size = "64m"
    container_network: Annotated[str, AfterValidator(_network)] = DEFAULT_NETWORK
    runner_max_memory: OptionalSize = None   # empty: the engine's memory
    runner_max_cpus: Cpus | None = None      # empty: the engine's CPUs
    runner_labels: Annotated[dict, BeforeValidator(_runner_labels), Field(validate_default=True)] = ""  # empty: none
    runner_gpus: Annotated[tuple, BeforeValidator(_runner_gpus), Field(validate_default=True)] = ""  # empty: none


class AllSettings(GatewaySettings, RegistrySettings, SchedulerSettings, RunnerSettings):
    """Every setting: for a service of another name (a test's)."""


MODELS = {"gateway": GatewaySettings, "registry": RegistrySettings,
          "scheduler": SchedulerSettings, "runner": RunnerSettings}


# ------------------------------------------------------------------ parsing

def _limits(field):
    metadata = [*field.metadata, *(m for arg in get_args(field.annotation) for m in getattr(arg, "__metadata__", ()))]
    low = next((m.ge for m in metadata if isinstance(m, Ge)), None)
    above = next((m.gt for m in metadata if isinstance(m, Gt)), None)
    high = next((m.le for m in metadata if isinstance(m, Le)), None)
    if low is not None and high is not None:
        return f" from {low} to {high}"
    if low is not None:
        return f" of at least {low}"
    return f" above {above}" if above is not None else ""


def _explain(field, error):
    if error["type"] in ("value_error", "assertion_error"):
        return str(error["ctx"]["error"])
    if error["type"] == "literal_error":
        return f"must be one of {error['ctx']['expected'].replace(chr(39), '')}"
    if error["type"] == "string_pattern_mismatch":
        return 'must be a size such as "16m"'
    kind = "an integer" if "int" in error["type"] or field.annotation is int else "a number"
    return f"must be {kind}{_limits(field)}"


def parse(model, config):
    """``model`` from a nameko config dict; raises ``SettingError`` naming the first bad setting."""
    raw = {field.alias: config.get(field.alias) for field in model.model_fields.values()}
    given = {key: value.strip() if isinstance(value, str) else value for key, value in raw.items()}
    try:
        parsed = model.model_validate({key: value for key, value in given.items() if value not in (None, "")})
    except PydanticError as exc:
        error = exc.errors()[0]
        field = next(f for name, f in model.model_fields.items() if error["loc"][0] in (name, f.alias))
        key = field.alias
        shown = raw[key] if key in raw and raw[key] not in (None, "") else field.default
        raise SettingError(f"{key}={shown!r}: {_explain(field, error)}") from None
    if isinstance(parsed, ImageGc):  # settings that bound each other
        parsed.check_image_gc()
    return parsed


def model_for(service_name):
    return MODELS.get(service_name, AllSettings)


def settings_of(container):
    """The container's settings, parsed at the first call (an extension's ``setup``) and kept."""
    parsed = vars(container).get("_stevedore_settings")
    if parsed is None:
        parsed = parse(model_for(getattr(container, "service_name", None)), container.config)
        vars(container)["_stevedore_settings"] = parsed
    return parsed
