"""``stevedore-entrypoint``: the container image's entrypoint.

    stevedore-entrypoint gateway|registry|scheduler|runner
        wait for what the service needs, then become its ``nameko run``
    stevedore-entrypoint migrate [--url URL]
        wait for PostgreSQL, then become ``stevedore-migrate``
    stevedore-entrypoint COMMAND [ARG...]
        become COMMAND as given (a shell, ``stevedore-host --only runner``, the CLI)

Why wait: nameko 2 exits at start when RabbitMQ does not answer (its event
dispatchers declare their exchanges while the service is set up), and compose's
``depends_on`` is not honoured everywhere (``docker compose run``, swarm stacks,
other orchestrators, a broker that restarts while a service does).  So every
service first waits for RabbitMQ (an AMQP login at ``AMQP_URI``); registry and
scheduler also wait until the database at ``DATABASE_URL`` carries the schema
this image ships (``stevedore-migrate`` has run).  It gives up after
``STEVEDORE_WAIT_SECONDS`` (default 300; 0 waits for ever) and exits 1, for the
restart policy to try again.  ``STEVEDORE_CONFIG`` names another config file
(default: the image's ``config.yml``).
"""
import logging
import os
import sys
import time

# Only the standard library here (serve's filters are too): a command run as given
# (a shell, the CLI) should not pay for importing nameko and SQLAlchemy, nor print
# their warnings.
from stevedore_jobs.serve import quiet_dependencies

log = logging.getLogger("stevedore_jobs.entrypoint")

BROKER_SERVICES = ("gateway", "registry", "scheduler", "runner")
SCHEMA_SERVICES = ("registry", "scheduler")
DEFAULT_WAIT_SECONDS = 300.0
PROBE_TIMEOUT = 5


# ------------------------------------------------------------------ probes
# Each returns None when the thing is ready, else a short reason to log.

def _reason(exc):
    lines = str(exc).strip().splitlines()
    return f"{exc.__class__.__name__}: {lines[0]}" if lines else exc.__class__.__name__


def broker_problem(amqp_uri):
    from kombu import Connection

    try:
        with Connection(amqp_uri, connect_timeout=PROBE_TIMEOUT) as conn:
            # each node of a cluster (AMQP_URI's ';'-separated URLs) once, in turn: one up will do
            conn.ensure_connection(max_retries=max(1, len(conn.alt) - 1))
    except Exception as exc:  # any failure means "not yet"; the reason is logged
        return _reason(exc)
    return None


def _engine(url):
    from sqlalchemy import create_engine, pool

    options = {"connect_timeout": PROBE_TIMEOUT} if url.startswith("postgresql") else {}
    return create_engine(url, poolclass=pool.NullPool, connect_args=options)


def server_problem(url):
    """PostgreSQL answers (on its maintenance database: ours may not exist yet)."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    target = make_url(url)
    if target.get_backend_name() == "postgresql":
        target = target.set(database="postgres")
    try:
        with _engine(target.render_as_string(hide_password=False)).connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return _reason(exc)
    return None


def schema_heads():
    """The alembic head revision(s) this code ships."""
    from alembic.script import ScriptDirectory

    from stevedore_jobs.migrate import alembic_config

    return set(ScriptDirectory.from_config(alembic_config()).get_heads())


def schema_problem(url):
    """The database exists and is migrated to exactly this code's schema."""
    from alembic.runtime.migration import MigrationContext

    try:
        with _engine(url).connect() as conn:
            current = set(MigrationContext.configure(conn).get_current_heads())
    except Exception as exc:
        return _reason(exc)
    wanted = schema_heads()
    if current == wanted:
        return None
    if not current:
        return "not migrated yet (run stevedore-migrate)"
    return (f"schema is at {', '.join(sorted(current))}, this image needs "
            f"{', '.join(sorted(wanted))} (run this image's stevedore-migrate)")


# ------------------------------------------------------------------ plan

def plan(argv, environ=None):
    """What to wait for and what to become: ([(what, probe), ...], command)."""
    environ = os.environ if environ is None else environ
    name, rest = argv[0], list(argv[1:])
    waits = []
    if name not in BROKER_SERVICES + ("migrate",):
        return waits, list(argv)

    from stevedore_jobs import host
    from stevedore_jobs.settings import DEFAULT_AMQP_URI, database_url

    amqp_uri = environ.get("AMQP_URI") or DEFAULT_AMQP_URI
    if name in BROKER_SERVICES:
        waits.append(("RabbitMQ", lambda: broker_problem(amqp_uri)))
        if name in SCHEMA_SERVICES:
            url = database_url()
            waits.append(("the database schema", lambda: schema_problem(url)))
        config = environ.get("STEVEDORE_CONFIG") or host.CONFIG
        return waits, host.service_command(name, config) + rest
    url = database_url()
    waits.append(("PostgreSQL", lambda: server_problem(url)))
    return waits, [sys.executable, "-m", "stevedore_jobs.commands", "migrate"] + rest


def wait_for(what, probe, timeout, interval=2.0, report_every=10.0,
             clock=time.monotonic, sleep=time.sleep):
    """Call ``probe`` until it finds nothing wrong; False if ``timeout`` (> 0) runs out first."""
    start = clock()
    reported = None
    while True:
        problem = probe()
        if problem is None:
            if reported is not None:
                log.info("%s is ready", what)
            return True
        now = clock()
        if timeout > 0 and now - start >= timeout:
            log.error("gave up waiting for %s after %.0f s: %s", what, now - start, problem)
            return False
        if reported is None or now - reported >= report_every:
            log.info("waiting for %s: %s", what, problem)
            reported = now
        sleep(interval)


def wait_seconds(environ):
    value = environ.get("STEVEDORE_WAIT_SECONDS", "")
    try:
        return float(value) if value.strip() else DEFAULT_WAIT_SECONDS
    except ValueError:
        raise SystemExit(f"stevedore-entrypoint: STEVEDORE_WAIT_SECONDS={value!r} is not a number")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__, file=sys.stderr)
        return 0 if argv else 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    timeout = wait_seconds(os.environ)
    quiet_dependencies()  # before plan() imports what imports eventlet
    waits, command = plan(argv)
    for what, probe in waits:
        if not wait_for(what, probe, timeout):
            return 1
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvp(command[0], command)


if __name__ == "__main__":
    sys.exit(main())
