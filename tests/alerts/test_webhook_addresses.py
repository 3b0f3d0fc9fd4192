"""Webhook URLs cannot reach the server's own network: loopback, private and link-local
addresses (cloud metadata) are refused in the form and again when the alert is sent,
unless ALERTS_WEBHOOK_ALLOW_PRIVATE is set."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.urls import reverse

from alerts.channels import ChannelError, WebhookChannel, is_public_address
from alerts.content import AlertContent
from alerts.models import AlertRule, Notification
from alerts.rules import create_rule
from alerts.sample import send_test_alert
from tests.alerts.test_views import FORM
from tests.conftest import login

pytestmark = pytest.mark.django_db


@pytest.fixture
def loopback_hook() -> Iterator[tuple[int, list[bytes]]]:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


CONTENT = AlertContent(subject="s", text="t", html="<p>h</p>", payload={"type": "smtpplus.alert"})


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8000/hook",
    "http://localhost/hook",
    "http://[::1]/hook",
    "http://169.254.169.254/latest/meta-data/",
    "https://10.1.2.3/hook",
    "https://192.168.0.10/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[2002:a9fe:a9fe::1]/latest/meta-data/",
    "http://[64:ff9b::10.0.0.1]/hook",
])
def test_the_form_refuses_a_webhook_inside_our_network(client, cast, url):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": url})
    assert r.status_code == 200
    assert "Alerts cannot be sent to this URL" in r.content.decode()
    assert not AlertRule.objects.filter(name="Shop failures").exists()


def test_the_form_accepts_a_public_webhook(client, cast):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": "https://93.184.215.14/hook"},
                    follow=True)  # to the rule's page, which shows the secret once
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"  # the secret page
    assert AlertRule.objects.filter(name="Shop failures").exists()


def test_the_setting_allows_private_webhooks(client, cast, settings):
    settings.ALERTS_WEBHOOK_ALLOW_PRIVATE = True
    login(client, cast.alice)
    client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": "http://127.0.0.1:8000/hook"})
    assert AlertRule.objects.get(name="Shop failures").webhook_url == "http://127.0.0.1:8000/hook"


def test_a_name_that_resolves_to_loopback_is_refused_when_sending(loopback_hook):
    port, received = loopback_hook
    with pytest.raises(ChannelError) as caught:
        WebhookChannel(f"http://localhost:{port}/hook", "whsec_x").notify(CONTENT)
    assert caught.value.permanent
    assert "ALERTS_WEBHOOK_ALLOW_PRIVATE" in str(caught.value)
    assert received == []


def test_a_rule_stored_before_the_check_cannot_alert_a_loopback_address(cast, loopback_hook):
    port, received = loopback_hook
    rule, _ = create_rule(cast.acme, {
        "name": "Old hook", "events": ["delivery_failed"], "frequency": "as_needed",
        "email_recipients": "", "webhook_url": f"http://127.0.0.1:{port}/hook",
    })
    [n] = send_test_alert(rule)
    assert received == []
    assert Notification.objects.get(pk=n.pk).status == "failed"
    assert "not sent to loopback, private or link-local addresses" in n.error


def test_with_the_setting_a_loopback_webhook_is_called(settings, loopback_hook):
    settings.ALERTS_WEBHOOK_ALLOW_PRIVATE = True
    port, received = loopback_hook
    WebhookChannel(f"http://localhost:{port}/hook", "whsec_x").notify(CONTENT)
    assert len(received) == 1


@pytest.mark.parametrize(("address", "public"), [
    ("93.184.215.14", True), ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True),
    ("127.0.0.1", False), ("10.0.0.1", False), ("172.16.5.4", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("::1", False),  # noqa: S104
    ("fe80::1%eth0", False), ("fd00::1", False), ("::ffff:10.0.0.1", False), ("224.0.0.1", False),
    ("not-an-address", False),
    # IPv6 addresses that wrap an IPv4 address: 6to4 and NAT64.
    ("2002:7f00:1::1", False), ("2002:a9fe:a9fe::", False), ("2002:5db8:d70e::1", True),
    ("64:ff9b::7f00:1", False), ("64:ff9b::a9fe:a9fe", False), ("64:ff9b::5db8:d70e", True),
    ("64:ff9b:1::a00:1", False),
])
def test_which_addresses_count_as_public(address, public):
    assert is_public_address(address) is public
