"""Webhook alerts received by a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail

from alerts.models import Notification
from alerts.rules import create_rule, reset_secret
from alerts.sending import run_once
from tests.alerts.conftest import backdate, failed_message, later

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _loopback_webhooks_allowed(settings):
    # The receiving server of these tests listens on loopback.
    settings.ALERTS_WEBHOOK_ALLOW_PRIVATE = True


@dataclass
class Hook:
    url: str
    statuses: list[int] = field(default_factory=list)  # answered in turn; then 204
    delay: float = 0.0
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def hook() -> Iterator[Hook]:
    state = Hook(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            state.requests.append((dict(self.headers.items()), body))
            if state.delay:
                time.sleep(state.delay)
            status = state.statuses.pop(0) if state.statuses else 204
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/smtpplus"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def webhook_rule(cast, hook: Hook):
    rule, secret = create_rule(cast.acme, {
        "name": "Hook", "events": ["delivery_failed"], "frequency": "as_needed",
        "email_recipients": "", "webhook_url": hook.url,
    })
    return backdate(rule), secret


def test_the_webhook_gets_a_json_body_signed_with_the_rules_secret(cast, hook):
    rule, secret = webhook_rule(cast, hook)
    assert secret and secret.startswith("whsec_")
    assert secret not in rule.webhook_secret_encrypted  # stored encrypted
    failed_message(cast.acme_smtp, ["ghost@example.net"], subject="Order <#12>")

    assert run_once(now=later()) == 1
    assert mail.outbox == []
    headers, body = hook.requests[0]
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-SMTPPlus-Signature"] == expected
    assert headers["Content-Type"].startswith("application/json")
    payload = json.loads(body)
    assert payload["type"] == "smtpplus.alert" and payload["test"] is False
    assert payload["account"] == "Acme" and payload["count"] == 1
    assert payload["subject"].startswith("[SMTP+] 1 message could not be delivered (Acme)")
    event = payload["events"][0]
    assert event["recipient"] == "ghost@example.net"
    assert event["subject"] == "Order <#12>"
    assert event["reply"] == {"code": 550, "enhanced": "5.1.1", "text": "User unknown"}
    assert event["reason"] == "recipient mailbox does not exist"
    assert event["smtp_user"] == cast.acme_smtp.username
    assert event["console_url"].startswith("https://console.example.com/")
    assert Notification.objects.get().status == "sent"


def test_a_reset_secret_signs_the_next_alerts_and_the_old_one_no_longer_verifies(cast, hook):
    rule, old = webhook_rule(cast, hook)
    new = reset_secret(rule)
    assert new != old
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    run_once(now=later())
    headers, body = hook.requests[0]
    assert headers["X-SMTPPlus-Signature"] == "sha256=" + hmac.new(new.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-SMTPPlus-Signature"] != "sha256=" + hmac.new(old.encode(), body, hashlib.sha256).hexdigest()


def test_a_webhook_answering_500_is_retried_then_logged_as_failed(cast, hook, settings):
    settings.ALERTS_RETRY_DELAYS = [0, 0]
    hook.statuses = [500, 500, 500, 500]
    webhook_rule(cast, hook)
    failed_message(cast.acme_smtp, ["ghost@example.net"])

    assert run_once(now=later()) == 3
    assert len(hook.requests) == 3
    # The same delivery id on every try, so the receiver can drop duplicates.
    assert len({h["X-SMTPPlus-Delivery"] for h, _ in hook.requests}) == 1
    n = Notification.objects.get()
    assert (n.status, n.attempts) == ("failed", 3)
    assert n.error == "the webhook answered HTTP 500 Internal Server Error"
    assert run_once(now=later(3600)) == 0  # never raises another alert


def test_a_webhook_that_recovers_is_marked_sent(cast, hook, settings):
    settings.ALERTS_RETRY_DELAYS = [0, 0]
    hook.statuses = [503]
    webhook_rule(cast, hook)
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    assert run_once(now=later()) == 2
    n = Notification.objects.get()
    assert (n.status, n.attempts, n.error) == ("sent", 2, "")


def test_a_webhook_answering_404_is_not_retried(cast, hook, settings):
    settings.ALERTS_RETRY_DELAYS = [0, 0]
    hook.statuses = [404]
    webhook_rule(cast, hook)
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    assert run_once(now=later()) == 1
    n = Notification.objects.get()
    assert (n.status, n.attempts) == ("failed", 1)
    assert "HTTP 404" in n.error


def test_a_webhook_that_does_not_answer_in_time_is_retried(cast, hook, settings):
    settings.ALERTS_WEBHOOK_TIMEOUT = 0.3
    settings.ALERTS_RETRY_DELAYS = [60]
    hook.delay = 1.0
    webhook_rule(cast, hook)
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    run_once(now=later())
    n = Notification.objects.get()
    assert n.status == "retrying"
    assert n.error == "the webhook did not answer within 0.3 s"
