"""What a runner may do on RabbitMQ: the least-privilege user of the runner hosts (issue 18 hardening).

Runner hosts run arbitrary images, so whoever holds a runner host holds the AMQP credentials it runs with.
With the services' own user that is everything: ``registry.create_token`` for an admin, every RPC, every
queue.  A runner needs far less, found by experiment (tests/e2e/test_runner_broker_user.py runs a task to
COMPLETE through a runner holding only this):

- its RPC reply queue ``rpc.reply-runner-<uuid>`` (declare, bind to ``nameko-rpc`` with its uuid, consume);
- its broadcast queues ``evt-scheduler-<event>--runner.<handler>-<hex>`` (declare, bind to
  ``scheduler.events`` with the event's name, consume) for the wake-ups and cancels it listens to;
- to publish RPC requests on ``nameko-rpc`` with the routing keys ``<service>.<method>`` of ``CALLS``
  alone, and its reports on ``runner.events`` with the routing keys of ``EVENTS`` alone;
- configure on the three exchanges it declares (nameko declares each exchange it uses, not passively).

RabbitMQ's permissions say which queues and exchanges (configure, write, read regexes) and its topic
permissions which routing keys on a topic exchange (write: publish; read: bind).  Everything else is
refused by the broker (ACCESS_REFUSED), whatever the runner's code: ``registry.create_token``, any other
RPC, another service's queue.  What a runner host can still do is in docs/guarantees.md "Trust boundaries".

``scripts/rabbitmq-runner-user`` (``python -m shared.broker_access``; compose's one-shot
``rabbitmq-runner-user`` service) applies them through the management API, or prints the ``rabbitmqctl``
commands (``--print``; docs/deployment.md "A RabbitMQ user for the runners").
"""
import re

from shared import events

RPC_EXCHANGE = "nameko-rpc"  # nameko's default (config.yml sets no other)
RUNNER = "runner"

# the RPCs a runner makes (services/runner/service.py, reconcile.py): claims, leases, hand-backs, pulls
CALLS = {
    # claim_executions: a runner's batch claim; claim_execution: the one-at-a-time claim of runners from before
    "scheduler": ("claim_executions", "claim_execution", "heartbeat", "release_claim", "installation_id",
                  "runner_holdings", "execution_states"),
    "registry": ("pull_credentials",),
}
# what it reports (runner.events) and what it listens to (scheduler.events, broadcast)
EVENTS = (events.EXECUTION_STARTED, events.EXECUTION_OUTPUT, events.EXECUTION_FINISHED, events.EXECUTION_REPORTS)
LISTENS = (events.EXECUTIONS_QUEUED, events.RESULT_CANCELLED, events.EXECUTION_CANCEL_REQUESTED)

REPLY_KEY = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # str(uuid4): a reply queue's key


def _lit(name):
    """A name as a regex matching it alone (names here hold letters, digits, '_', '-' and '.')."""
    assert re.fullmatch(r"[\w.-]+", name), name
    return name.replace(".", r"\.")


def _one_of(names):
    return "(" + "|".join(_lit(name) for name in names) + ")"


def _exchange(service):
    return f"{service}.events"


def _queues():
    """The queues a runner declares and consumes (and nothing else's)."""
    reply = _lit(f"rpc.reply-{RUNNER}-") + REPLY_KEY
    broadcast = _lit(f"evt-{events.SCHEDULER}-") + _one_of(LISTENS) + _lit(f"--{RUNNER}.") + "on_[a-z_]+-[0-9a-f]{32}"
    return [reply, broadcast]


def permissions():
    """The vhost permissions of the runners' user: ``{"configure", "write", "read"}`` regexes."""
    queues = _queues()
    rpc, reports, listened = _lit(RPC_EXCHANGE), _lit(_exchange(RUNNER)), _lit(_exchange(events.SCHEDULER))

    def anchored(parts):
        return "^(" + "|".join(parts) + ")$"

    return {
        "configure": anchored([*queues, rpc, reports, listened]),  # declares them (exchanges: not passively)
        "write": anchored([*queues, rpc, reports]),                # binds its queues; publishes calls, reports
        "read": anchored([*queues, rpc, listened]),                # consumes its queues; binds to the exchanges
    }


def topic_permissions():
    """The topic permissions of the runners' user, one per topic exchange it uses: which routing keys it may
    publish (write) and bind its queues with (read)."""
    calls = [f"{service}.{method}" for service, methods in CALLS.items() for method in methods]
    return [
        {"exchange": RPC_EXCHANGE, "write": f"^{_one_of(calls)}$", "read": f"^{REPLY_KEY}$"},
        {"exchange": _exchange(RUNNER), "write": f"^{_one_of(EVENTS)}$", "read": "^$"},
        {"exchange": _exchange(events.SCHEDULER), "write": "^$", "read": f"^{_one_of(LISTENS)}$"},
    ]


def _quoted(text):
    return "'" + text.replace("'", "'\\''") + "'"


def rabbitmqctl(user, vhost="/"):
    """The ``rabbitmqctl`` commands giving ``user`` (made with ``rabbitmqctl add_user``) exactly this."""
    given = permissions()
    commands = [f"rabbitmqctl set_permissions -p {_quoted(vhost)} {_quoted(user)} "
                f"{_quoted(given['configure'])} {_quoted(given['write'])} {_quoted(given['read'])}"]
    for topic in topic_permissions():
        commands.append(f"rabbitmqctl set_topic_permissions -p {_quoted(vhost)} {_quoted(user)} "
                        f"{_quoted(topic['exchange'])} {_quoted(topic['write'])} {_quoted(topic['read'])}")
    return commands


def apply(management_url, admin, user, password, vhost="/", wait=0):
    """Make (or update) ``user`` with ``password`` and exactly these permissions on ``vhost``, through
    RabbitMQ's management API at ``management_url`` as ``admin`` ((name, password)).  ``wait``: seconds to
    keep trying while the API does not answer yet (a broker still starting); None: for ever."""
    import time
    from urllib.parse import quote

    import requests

    api = management_url.rstrip("/") + "/api"
    where = f"{quote(vhost, safe='')}/{quote(user, safe='')}"
    deadline = None if wait is None else time.monotonic() + wait
    while True:
        try:
            requests.get(f"{api}/overview", auth=admin, timeout=10).raise_for_status()
            break
        except requests.RequestException:
            if deadline is not None and time.monotonic() >= deadline:
                raise
            time.sleep(2)

    def put(path, body):
        response = requests.put(f"{api}/{path}", json=body, auth=admin, timeout=10)
        if response.status_code not in (200, 201, 204):
            raise RuntimeError(f"PUT {path}: {response.status_code} {response.text[:300]}")

    put(f"users/{quote(user, safe='')}", {"password": password, "tags": ""})
    put(f"permissions/{where}", permissions())
    requests.delete(f"{api}/topic-permissions/{where}", auth=admin, timeout=10)  # none but these after
    for topic in topic_permissions():
        put(f"topic-permissions/{where}", topic)


def main(argv=None):
    """``scripts/rabbitmq-runner-user`` (and compose's ``rabbitmq-runner-user`` service)."""
    import argparse
    import os

    parser = argparse.ArgumentParser(
        prog="rabbitmq-runner-user",
        description="Give the runners' RabbitMQ user only what a runner needs (docs/deployment.md "
                    "\"A RabbitMQ user for the runners\").")
    parser.add_argument("--print", action="store_true", help="print the rabbitmqctl commands and exit")
    parser.add_argument("--user", default=os.environ.get("RABBITMQ_RUNNER_USER", "stevedore-runner"))
    parser.add_argument("--vhost", default=os.environ.get("RABBITMQ_VHOST", "/"))
    parser.add_argument("--management-url", default=os.environ.get("RABBITMQ_MANAGEMENT_URL",
                                                                   "http://127.0.0.1:15672"))
    parser.add_argument("--wait", type=float, default=float(os.environ.get("STEVEDORE_WAIT_SECONDS", "300")))
    args = parser.parse_args(argv)
    if args.print:
        print(f"rabbitmqctl add_user '{args.user}' PASSWORD   # once; or change_password")
        print("\n".join(rabbitmqctl(args.user, args.vhost)))
        return 0
    password = os.environ.get("RABBITMQ_RUNNER_PASSWORD")
    admin = (os.environ.get("RABBITMQ_USER", "guest"), os.environ.get("RABBITMQ_PASSWORD", "guest"))
    if not password:
        parser.error("RABBITMQ_RUNNER_PASSWORD must be set (the runners' password; never on the command line)")
    apply(args.management_url, admin, args.user, password, args.vhost, wait=args.wait if args.wait > 0 else None)
    print(f"RabbitMQ user {args.user!r} on vhost {args.vhost!r} has the runners' permissions only")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
