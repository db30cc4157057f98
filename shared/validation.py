"""The HTTP contract's rules (stevedore_jobs/contract/) as the services use them: a broken rule is a
``ValidationError`` naming its field, which crosses RPC as itself and the gateway answers 400.

What is declared here and nowhere else: the check of a stored run against the operator's ceilings
(``within_ceilings``; the ceilings themselves are settings, shared/settings.py).
"""
import functools

from stevedore_jobs.contract import checks, labels, requests, run, tes
from stevedore_jobs.contract.checks import SHOWN_MAX, size_text  # noqa: F401 -- used through here
from stevedore_jobs.contract.requests import Limits
from shared.errors import ValidationError


def told(function):
    """``function`` raising ``ValidationError`` where the contract raises ``Invalid``."""
    @functools.wraps(function)
    def checked(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except checks.Invalid as exc:
            raise ValidationError(exc.message, exc.field) from None
    return checked


check_text = told(checks.check_text)
check_strings = told(checks.check_strings)
parse_reference = told(checks.parse_reference)
memory_bytes = told(checks.memory_bytes)
operation = told(requests.operation)
idempotency_key = told(requests.idempotency_key)
parse = told(requests.parse)
query = told(requests.query)
label_filters = told(labels.parse_filters)


@told
def new_task(body):
    """Validate a POST /task/ body; returns (name, repository)."""
    checks.check_strings(body)
    task = requests.parse(requests.NewTask, body)
    name = task.name or task.repository
    if tes.reserved_name(name):  # another team's TES tasks must not find a task of someone else's
        raise checks.Invalid(f"names starting {tes.IMAGE_TASK_PREFIX.strip()!r} are reserved for the tasks "
                             "GA4GH TES makes for its executors' images", "name")
    return name, task.repository


@told
def task_labels(body):
    """The ``labels`` of a POST /task/ body (``{}`` if none)."""
    return requests.parse(requests.NewTask, {"repository": "x", **body}).labels or {}  # TES_LABEL refused


@told
def registry_credentials(body):
    """The optional ``username`` and ``password`` of a POST /task/ body (both or neither), or None."""
    return requests.parse(requests.NewTask, {"repository": "x", **body}).credentials()


def limits(max_times, max_memory=None, max_cpus=None, max_disk=None):
    """The contract's Limits; no ceiling (None) is the widest a RUN may ask."""
    return Limits(max_times, max_memory or checks.MEMORY_MAX, max_cpus or 1024.0, max_disk or checks.MEMORY_MAX)


@told
def run_params(body, max_times, max_memory=None, max_cpus=None, max_disk=None):
    """Validate a RUN body; returns the parameters the result is run with.

    ``max_memory`` (bytes), ``max_cpus`` and ``max_disk`` (bytes): the operator's
    ceilings (``ceilings``); a RUN asking more is refused, naming the field.
    """
    checks.check_strings(body)
    return run.run_params(body, limits(max_times, max_memory, max_cpus, max_disk))


@told
def run_parts(body, max_times, max_memory=None, max_cpus=None, max_disk=None):
    """``run_params``, and what each execution is given (``{"items": [...]}``, ``{"matrix": {...}}`` or None)."""
    checks.check_strings(body)
    return run.run_parts(body, limits(max_times, max_memory, max_cpus, max_disk))


@told
def within_ceilings(params, max_memory=None, max_cpus=None, max_disk=None):
    """Refuse ``memory``, ``cpus`` or ``disk`` above the operator's ceilings (None: no ceiling)."""
    run.memory_within(params.get("memory"), max_memory)
    run.cpus_within(params.get("cpus"), max_cpus)
    run.disk_within(params.get("disk"), max_disk)
    return params


def status_filter(status, allowed):
    """A ``?status=`` filter: None, or one of ``allowed``."""
    if status is not None and status not in allowed:
        raise ValidationError(f"must be one of {', '.join(allowed)}", "status")
    return status
