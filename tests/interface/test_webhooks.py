"""Webhook delivery by the scheduler alone, on the real broker and database, to a real HTTP receiver."""
import resource
import socket
import threading
import time

import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter

from services.scheduler.service import SchedulerService
from tests.interface.test_scheduler_service import run_ready
from tests.support import WebhookReceiver, call, free_port, wait_until


def start_scheduler(container_factory, service_config, **settings):
    config = {**service_config, "WEBHOOK_SECRET": "interface-secret", "WEBHOOK_ATTEMPTS": 3,
              "WEBHOOK_BACKOFF": 0.2, "WEBHOOK_TIMEOUT": 2, **settings}
    container = container_factory(SchedulerService, config)
    container.start()
    return container


@pytest.fixture
def scheduler(container_factory, service_config):
    """A scheduler whose operator lets webhooks reach loopback (where the tests' receivers are)."""
    return start_scheduler(container_factory, service_config, WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8")


@pytest.fixture
def guarded_scheduler(container_factory, service_config):
    """A scheduler with the default egress policy: global addresses only."""
    return start_scheduler(container_factory, service_config)


def finished_run(container, callback_url):
    """A run that ends at once (cancelled while queued), announcing result_finished."""
    with entrypoint_waiter(container, "on_result_submitted"):
        result = run_ready(container, {"operation": "RUN", "times": 1, "callback_url": callback_url})
    with entrypoint_waiter(container, "on_result_finished", timeout=30):
        call(container, "cancel_result", result["result_id"])
    return result["result_id"]


def webhook_settled(container, result_id):
    def settled():
        webhook = call(container, "get_result", result_id)["webhook"]
        return webhook if webhook["status"] in ("DELIVERED", "FAILED") else None

    return wait_until(settled, timeout=30, what="the webhook to settle")


def test_a_webhook_that_keeps_failing_stops_after_the_configured_attempts(scheduler):
    with WebhookReceiver(answers=[503] * 10) as receiver:
        result_id = finished_run(scheduler, receiver.url)
        webhook = webhook_settled(scheduler, result_id)
        time.sleep(1)
        assert len(receiver.received) == 3
    assert webhook["status"] == "FAILED" and webhook["delivered"] is False
    assert [d["outcome"] for d in webhook["deliveries"]] == ["http 5xx"] * 3
    gaps = [b["at"] - a["at"] for a, b in zip(webhook["deliveries"], webhook["deliveries"][1:])]
    assert gaps[0] >= 0.2 and gaps[1] >= 0.4  # 0.2s, then doubled


def test_a_connection_error_is_recorded_and_retried(scheduler):
    result_id = finished_run(scheduler, f"http://127.0.0.1:{free_port()}/nobody-listens")
    webhook = webhook_settled(scheduler, result_id)
    assert webhook["status"] == "FAILED"
    assert len(webhook["deliveries"]) == 3
    assert [d["outcome"] for d in webhook["deliveries"]] == ["unreachable"] * 3


def test_a_delivered_webhook_is_not_sent_again_when_the_finish_is_announced_twice(
        scheduler, service_config):
    with WebhookReceiver() as receiver:
        result_id = finished_run(scheduler, receiver.url)
        assert webhook_settled(scheduler, result_id)["delivered"] is True
        result = call(scheduler, "get_result", result_id)
        dispatch = event_dispatcher(service_config)
        with entrypoint_waiter(scheduler, "on_result_finished"):
            dispatch("scheduler", "result_finished", result)
        time.sleep(1.5)  # and the due-webhook timer finds nothing either
        assert len(receiver.received) == 1
    assert [d["outcome"] for d in call(scheduler, "get_result", result_id)["webhook"]["deliveries"]] == ["delivered"]


def test_loopback_by_address_is_refused_at_the_run_and_by_name_at_delivery(guarded_scheduler):
    scheduler = guarded_scheduler
    with WebhookReceiver() as receiver:
        with pytest.raises(Exception) as caught:
            run_ready(scheduler, {"operation": "RUN", "times": 1, "callback_url": receiver.url})
        assert caught.value.__class__.__name__ == "ValidationError"
        assert caught.value.field == "callback_url"
        # localhost comes from /etc/hosts (no DNS query): resolved at delivery, and refused there
        by_name = receiver.url.replace("127.0.0.1", "localhost")
        result_id = finished_run(scheduler, by_name)
        webhook = webhook_settled(scheduler, result_id)
        assert receiver.received == []
    assert webhook["status"] == "FAILED"
    assert [d["outcome"] for d in webhook["deliveries"]] == ["refused"] * 3


class RawReceiver:
    """A loopback HTTP peer that misbehaves after reading each request: trickles, or floods."""

    def __init__(self, behaviour):
        self.behaviour = behaviour
        self.sent = 0
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/hook"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        # the socket is closed by this thread alone: closing it under a waiting accept
        # would leave the hub listening on a file descriptor that the next socket reuses
        self.sock.settimeout(0.2)
        try:
            while not self.closed:
                try:
                    conn, _ = self.sock.accept()
                except socket.timeout:
                    continue
                conn.settimeout(None)
                self.connections += 1
                threading.Thread(target=self._serve, args=(conn,), daemon=True).start()
        finally:
            self.sock.close()

    def _serve(self, conn):
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            if self.behaviour == "trickle":
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                    conn.sendall(bytes([byte]))
                    self.sent += 1
                    time.sleep(1)
            else:  # a gigabyte of answer
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
                chunk = b"\0" * 65536
                while self.sent < 1_000_000_000:
                    conn.sendall(chunk)
                    self.sent += len(chunk)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.closed = True
        time.sleep(0.5)


def test_trickling_receivers_time_out_without_holding_the_schedulers_workers(scheduler):
    receiver = RawReceiver("trickle")
    try:
        # more receivers than the scheduler has workers (10): each would hold one for ever
        results = [finished_run(scheduler, receiver.url) for _ in range(12)]
        assert call(scheduler, "get_result", results[0])["result_id"] == results[0]  # workers free
        for result_id in results:
            webhook = webhook_settled(scheduler, result_id)
            assert webhook["status"] == "FAILED"
            assert {d["outcome"] for d in webhook["deliveries"]} == {"timeout"}
        # each attempt is cut at WEBHOOK_TIMEOUT (2 s): two or three bytes of the status line, never all
        assert receiver.connections == 36
    finally:
        receiver.close()


def test_a_gigabyte_answer_is_not_read(scheduler):
    receiver = RawReceiver("flood")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        result_id = finished_run(scheduler, receiver.url)
        webhook = webhook_settled(scheduler, result_id)
    finally:
        receiver.close()
    assert [d["outcome"] for d in webhook["deliveries"]] == ["delivered"]
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert receiver.sent < 50_000_000, receiver.sent  # what the sockets' buffers took, no more
    assert grown_mb < 100, grown_mb
