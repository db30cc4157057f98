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
