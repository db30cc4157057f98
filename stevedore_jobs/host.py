"""``stevedore-host``: the whole system as plain processes on this host.

For people without compose, and for the tests: migrates the database, then
runs gateway, registry, scheduler and N runners, each as its own ``nameko run``
process, against the RabbitMQ, PostgreSQL and Docker engine named by
AMQP_URI, DATABASE_URL and DOCKER_HOST (default: the local ones).  Ctrl-C (or
SIGTERM) stops them all gracefully.

``--only`` runs some of the services, e.g. ``--only runner --runners 4`` on a
machine that only runs executions against a central RabbitMQ (see
docs/deployment.md); the database is migrated only when a service that uses it
(registry, scheduler) is among them.
"""
import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from importlib.resources import files

from stevedore_jobs import migrate
from stevedore_jobs.settings import database_url

# package data of ``services``: found where the package is installed, checkout or not
CONFIG = str(files("services") / "config.yml")
SERVICES = ("gateway", "registry", "scheduler", "runner")
DATABASE_SERVICES = ("registry", "scheduler")


def service_command(name, config=CONFIG):
    """``nameko run`` of one service (through stevedore_jobs.serve: no deprecation notices at start)."""
    return [sys.executable, "-m", "stevedore_jobs.serve", "--config", config, f"services.{name}.service"]


def spawn(name, env=None, log_file=None, config=CONFIG, prefix=()):
    """Start one service process; its output goes to ``log_file`` (or ours).

    ``prefix`` is a command that execs the service, e.g. ``nsenter --net=...``
    to run it in another network namespace.
    """
    full_env = {**os.environ, **(env or {})}
    out = open(log_file, "ab") if log_file else None
    try:
        return subprocess.Popen([*prefix, *service_command(name, config)], env=full_env,
                                stdout=out, stderr=subprocess.STDOUT if out else None)
    finally:
        if out:
            out.close()


def plan(runners, port, metrics_port=0, services=SERVICES):
    """(label, service, extra environment) for each process of the system (or of ``services``).

    With ``metrics_port`` each process but the gateway (whose /metrics is on
    its API port) serves its metrics on a port of its own, counting up from
    it: registry, scheduler, runner-1, runner-2 ... (of those planned); without,
    none does.
    """
    procs = [("gateway", "gateway", {"GATEWAY_ADDRESS": f"0.0.0.0:{port}"}),
             ("registry", "registry", {}), ("scheduler", "scheduler", {})]
    host = os.uname().nodename
    for n in range(1, runners + 1):
        procs.append((f"runner-{n}", "runner", {"RUNNER_ID": f"{host}-runner-{n}"}))
    procs = [proc for proc in procs if proc[1] in services]
    ports = iter(range(metrics_port, metrics_port + len(procs))) if metrics_port else None
    for label, _, extra in procs:
        # always set: one METRICS_PORT inherited by every process would collide
        extra["METRICS_PORT"] = str(next(ports)) if ports and label != "gateway" else "0"
    return procs


def service_list(text):
    """``--only`` value: comma-separated service names, in the order of SERVICES."""
    names = {name.strip() for name in text.split(",") if name.strip()}
    unknown = names - set(SERVICES)
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{text!r}: choose one or more of {', '.join(SERVICES)} (comma-separated)")
    return tuple(name for name in SERVICES if name in names)


def stop_all(procs, grace):
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs.values():
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runners", type=int, default=int(os.environ.get("RUNNERS", "2")),
                        help="runner replicas to start (default: $RUNNERS or 2)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", "8000")),
                        help="HTTP port of the gateway (default: $GATEWAY_PORT or 8000)")
    parser.add_argument("--only", type=service_list, default=SERVICES, metavar="SERVICE[,SERVICE]",
                        help="run only these services (default: all of " + ", ".join(SERVICES) + ")")
    parser.add_argument("--metrics-port", type=int, default=int(os.environ.get("METRICS_PORT") or 0),
                        help="first of the ports the registry, scheduler and runners serve their "
                             "Prometheus metrics on, one each (default: $METRICS_PORT or 0: off)")
    parser.add_argument("--no-migrate", action="store_true", help="do not migrate the database first")
    parser.add_argument("--grace", type=float, default=30.0,
                        help="seconds to wait for services to stop before killing them")
    args = parser.parse_args(argv)
    processes = plan(args.runners, args.port, args.metrics_port, args.only)
    if not processes:
        parser.error("nothing to run (--only runner with --runners 0)")

    auth_off = os.environ.get("STEVEDORE_AUTH", "on").lower() in ("off", "false", "0", "no")
    if "gateway" in args.only and not auth_off and not os.environ.get("STEVEDORE_TOKENS"):
        os.environ["STEVEDORE_TOKENS"] = secrets.token_urlsafe(24)
        print("stevedore: no STEVEDORE_TOKENS set; this run's API token is "
              f"{os.environ['STEVEDORE_TOKENS']}\n"
              "  use it as: curl -H 'Authorization: Bearer <token>' ...  or  export STEVEDORE_TOKEN=<token>",
              file=sys.stderr)
    if not args.no_migrate and set(args.only) & set(DATABASE_SERVICES):
        migrate.upgrade(database_url())
    procs = {label: spawn(service, env) for label, service, env in processes}
    api = f"; API on http://127.0.0.1:{args.port}/" if "gateway" in procs else ""
    print(f"stevedore: {', '.join(procs)} started{api}", file=sys.stderr)
    if args.metrics_port:
        print("stevedore: metrics on " + ", ".join(
            f"{label} :{env['METRICS_PORT']}" for label, _, env in processes if label != "gateway"),
            file=sys.stderr)

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    try:
        while not stopping:
            for label, proc in procs.items():
                if proc.poll() is not None:
                    print(f"stevedore: {label} exited with {proc.returncode}; stopping", file=sys.stderr)
                    stopping.append(True)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    stop_all(procs, args.grace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
