"""Webhooks: a finished run is POSTed, signed, to its callback_url, retried until taken."""
import hashlib
import hmac
import json
import time

import pytest

from tests.support import WebhookReceiver, wait_until

pytestmark = pytest.mark.e2e


def test_a_finished_run_is_posted_signed_and_retried_after_a_500(api, system, ready_tasks):
    secret = system.env["STEVEDORE_WEBHOOK_SECRET"]
    with WebhookReceiver(answers=[500]) as receiver:
        result_id = api.run(ready_tasks["ok"]["task_id"], times=2, callback_url=receiver.url)
        api.wait_result(result_id)

        def delivered():
            result = api.get(f"/result/{result_id}/").json()
            return result if result["webhook"]["delivered"] else None

        result = wait_until(delivered, timeout=60, what="the webhook to be delivered")
        time.sleep(3)  # a delivered webhook is not sent again
        assert len(receiver.received) == 2

    webhook = result["webhook"]
    assert webhook["url"] == receiver.url
    assert webhook["status"] == "DELIVERED"
    assert [d["outcome"] for d in webhook["deliveries"]] == ["http 5xx", "delivered"]
    assert [d["attempt"] for d in webhook["deliveries"]] == [1, 2]
    first, second = webhook["deliveries"]
    assert second["at"] - first["at"] >= 1.5  # WEBHOOK_BACKOFF (2s) before the second attempt

    for request in receiver.received:
        assert request["path"] == "/hooks/stevedore"
        assert request["headers"]["Content-Type"] == "application/json"
        expected = "sha256=" + hmac.new(secret.encode(), request["body"], hashlib.sha256).hexdigest()
        assert hmac.compare_digest(request["headers"]["X-Stevedore-Signature"], expected)
        assert request["headers"]["X-Stevedore-Delivery"] == result_id
    assert receiver.received[0]["body"] == receiver.received[1]["body"]
    sent = json.loads(receiver.received[1]["body"])
    assert sent["result_id"] == result_id
    assert sent["status"] == "COMPLETE"
    assert sent["counts"]["COMPLETE"] == 2
    assert sent["params"]["callback_url"] == receiver.url
    assert "webhook" not in sent
    assert (sent["team"], sent["submitted_by"]) == ("default", "admin")  # whose run: a STEVEDORE_TOKENS token's
    shown = {k: v for k, v in result.items() if k != "webhook"}
    assert sent == json.loads(json.dumps(shown))


def test_a_tampered_body_does_not_match_the_signature(api, system, ready_tasks):
    with WebhookReceiver() as receiver:
        result_id = api.run(ready_tasks["fail"]["task_id"], times=1, callback_url=receiver.url)
        api.wait_result(result_id)
        wait_until(lambda: receiver.received, timeout=30, what="the webhook")
    request = receiver.received[0]
    assert json.loads(request["body"])["status"] == "ERROR"
    tampered = request["body"].replace(b'"ERROR"', b'"COMPLETE"')
    secret = system.env["STEVEDORE_WEBHOOK_SECRET"].encode()
    forged = "sha256=" + hmac.new(secret, tampered, hashlib.sha256).hexdigest()
    assert request["headers"]["X-Stevedore-Signature"] != forged


def test_a_run_without_callback_url_has_no_webhook(api, ready_tasks):
    result = api.wait_result(api.run(ready_tasks["ok"]["task_id"], times=1))
    assert result["webhook"] is None


@pytest.mark.parametrize("url", [
    "ftp://example.com/hook", "example.com/hook", "http://", "http://user:pw@example.com/hook",
    "http://exa mple.com/", 42, "", "http://example.com:99999/",
])
def test_a_bad_callback_url_is_refused_with_400_naming_it(api, ready_tasks, url):
    response = api.post(f"/task/{ready_tasks['ok']['task_id']}/",
                        {"operation": "RUN", "times": 1, "callback_url": url})
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith("callback_url:")


class StandardReceiver:
    """What a receiver written with the `standardwebhooks` library does: verify, then drop repeats by id."""

    def __init__(self, secret):
        from standardwebhooks.webhooks import Webhook

        self.webhook = Webhook(secret.encode())  # an older free-text secret: its UTF-8 bytes are the key
        self.seen = set()
        self.processed = []

    def handle(self, request):
        """'processed', 'duplicate', or the verification error."""
        from standardwebhooks.webhooks import WebhookVerificationError

        try:
            payload = self.webhook.verify(request["body"], request["headers"])
        except WebhookVerificationError as exc:
            return f"rejected: {exc}"
        msg_id = request["headers"]["webhook-id"]
        if msg_id in self.seen:
            return "duplicate"
        self.seen.add(msg_id)
        self.processed.append(payload)
        return "processed"


def test_a_standard_webhooks_receiver_verifies_deliveries_drops_repeats_and_rejects_stale_ones(
        api, system, ready_tasks, monkeypatch):
    receiver = StandardReceiver(system.env["STEVEDORE_WEBHOOK_SECRET"])
    with WebhookReceiver(answers=[500]) as http:
        result_id = api.run(ready_tasks["ok"]["task_id"], times=1, callback_url=http.url)
        wait_until(lambda: len(http.received) >= 2, timeout=60, what="a retried delivery")
    first, second = http.received[:2]
    # every attempt of one result carries the same id, so a receiver can drop the repeats
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"] == f"msg_{result_id}"
    assert [receiver.handle(first), receiver.handle(second)] == ["processed", "duplicate"]
    assert receiver.processed[0]["result_id"] == result_id

    # the same delivery replayed ten minutes later is refused by the library's timestamp tolerance
    import standardwebhooks.webhooks as library
    from datetime import datetime, timedelta, timezone

    class Later(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz=timezone.utc) + timedelta(minutes=10)

    monkeypatch.setattr(library, "datetime", Later)
    assert StandardReceiver(system.env["STEVEDORE_WEBHOOK_SECRET"]).handle(second) \
        == "rejected: Message timestamp too old"
    monkeypatch.undo()
    tampered = dict(second, body=second["body"].replace(b'"COMPLETE"', b'"ERROR"'))
    assert StandardReceiver(system.env["STEVEDORE_WEBHOOK_SECRET"]).handle(tampered) \
        == "rejected: No matching signature found"
