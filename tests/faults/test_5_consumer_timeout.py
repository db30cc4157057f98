"""A job longer than RabbitMQ's consumer_timeout.

RabbitMQ closes the channel of a consumer that holds a delivery unacknowledged
for longer than ``consumer_timeout`` (30 minutes by default), and delivers the
message again: a runner that held its work as an unacked message would lose it
after 30 minutes and see it run twice.  Runners claim work by RPC instead and
hold nothing unacknowledged while a container runs.  This broker (3.10) has no
per-queue ``x-consumer-timeout`` (3.12+), so the test lowers the broker-wide
value (and the interval at which the broker checks it) for its duration, and
restores both after: other developers' consumers that hold a message longer
than 10 s meanwhile see their channel closed and the message delivered again.
"""
import re
import socket
import threading
import time

import kombu
import pytest

from tests.faults.checks import assert_truthful, run, wait_finished, wait_running

pytestmark = pytest.mark.faults

CONSUMER_TIMEOUT_MS = 10000
JOB_SECONDS = 30


def rabbit_env(key):
    out = run("rabbitmqctl", "eval", f"application:get_env(rabbit, {key}).").stdout.strip()
    match = re.match(r"\{ok,(\d+)\}", out)
    return int(match.group(1)) if match else None


def set_rabbit_env(key, value):
    if value is None:
        run("rabbitmqctl", "eval", f"application:unset_env(rabbit, {key}).")
    else:
        run("rabbitmqctl", "eval", f"application:set_env(rabbit, {key}, {int(value)}).")


class UnackedConsumer:
    """The control: a consumer that takes one message and never acknowledges it."""

    def __init__(self, amqp_uri):
        self.conn = kombu.Connection(amqp_uri)
        self.conn.connect()
        self.channel = self.conn.channel()
        self.closed_after = None
        self.error = None

    def start(self):
        queue = kombu.Queue("faults-unacked", durable=False, auto_delete=True)
        queue(self.channel).declare()
        kombu.Producer(self.channel).publish({"hold": "me"}, routing_key="faults-unacked")
        kombu.Consumer(self.channel, queues=[queue], callbacks=[lambda body, message: None],
                       accept=["json"]).consume()
        self.thread = threading.Thread(target=self._drain, daemon=True)
        self.thread.start()

    def _drain(self):
        began = time.monotonic()
        try:
            while time.monotonic() - began < JOB_SECONDS + 20:
                try:
                    self.conn.drain_events(timeout=1)
                except socket.timeout:
                    pass
        except Exception as exc:  # the broker closed our channel, as it should
            self.closed_after, self.error = time.monotonic() - began, exc

    def close(self):
        try:
            self.conn.release()
        except Exception:
            pass


def test_job_longer_than_the_consumer_timeout_completes_and_is_recorded_once(
        build_system, ok_task, docker_client):
    previous = {key: rabbit_env(key) for key in ("consumer_timeout", "channel_tick_interval")}
    control = None
    try:
        set_rabbit_env("consumer_timeout", CONSUMER_TIMEOUT_MS)
        # the broker checks the timeout on each channel's tick, every 60 s by default (and
        # re-reads the interval at each tick): tick every 2 s while the test lasts
        set_rabbit_env("channel_tick_interval", 2000)
        system = build_system(runners=1)
        control = UnackedConsumer(system.amqp_uri)
        control.start()

        api, task = system.api, ok_task(system)
        since = time.time()
        result_id = api.run(task["task_id"], times=1,
                            command=["sh", "-c", f"sleep {JOB_SECONDS}; echo done"])
        wait_running(api, result_id)
        assert wait_finished(api, result_id, timeout=JOB_SECONDS + 30)["status"] == "COMPLETE"
        [detail] = assert_truthful(api, docker_client, result_id, times=1, since=since)
        # the engine's own start/finish stamps: ``sleep 30`` may read a hair under 30 s
        assert detail["attempt"] == 1 and detail["duration"] >= JOB_SECONDS - 0.5, detail

        # the timeout was in force: it closed the control's channel...
        control.thread.join(5)
        assert control.error is not None and "PRECONDITION_FAILED" in str(control.error), control.error
        assert control.closed_after < JOB_SECONDS
        # ...and no service's
        for label in system.procs:
            assert "PRECONDITION_FAILED" not in system.log(label), label
    finally:
        for key, value in previous.items():
            set_rabbit_env(key, value)
        if control:
            control.close()
