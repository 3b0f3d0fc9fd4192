""""Send a test message as this user": a real SMTP conversation with the relay, shown
with the password masked."""

from __future__ import annotations

import base64
import socket

import pytest
from django.urls import reverse

from accounts.actions.smtp_users import set_active
from accounts.models import AuditEvent
from relay.listen import Endpoint
from relay.models import Message
from relay.smtp.tls import write_self_signed
from relay.troubleshooter.testmessage import MASK, RecordingSMTP, converse, endpoints


def url(user) -> str:
    return reverse("relay:test_message", args=[user.pk])


def post(client, user, port, sender="shop@acme.test", recipient="someone@example.net"):
    # Followed: the POST redirects to the troubleshooter, which shows the outcome once.
    return client.post(url(user), {"sender": sender, "recipient": recipient, "port": port},
                       follow=True)


def secrets_of(user, password: str) -> list[str]:
    return [password, base64.b64encode(f"\0{user.username}\0{password}".encode()).decode(),
            base64.b64encode(password.encode()).decode()]


def test_it_sends_through_the_relay_and_shows_the_conversation_masked(relay, cast, client):
    client.force_login(cast.bob)
    response = post(client, cast.acme_smtp, relay.port)
    html = response.content.decode()
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert "Accepted: 250 2.0.0 Ok: queued as " in html
    assert "S: 220 relay.test ESMTP SMTP+ ready" in html
    assert "C: ehlo smtpplus-console.invalid" in html
    assert f"C: AUTH PLAIN {MASK}" in html
    assert "S: 235 2.7.0 Authentication successful" in html
    assert "C: mail FROM:&lt;shop@acme.test&gt;" in html
    assert "C: Subject: SMTP+ test message for " in html
    for secret in secrets_of(cast.acme_smtp, cast.acme_smtp_password):
        assert secret not in html
    message = Message.objects.get()
    assert message.smtp_user == cast.acme_smtp
    assert message.queue_id in html
    audit = AuditEvent.objects.get(action="smtpuser.test_message")
    assert audit.actor == cast.bob
    assert audit.details["ok"] is True and audit.details["port"] == relay.port


def test_an_unauthorized_sender_shows_the_relays_refusal(relay, cast, client):
    client.force_login(cast.alice)
    html = post(client, cast.acme_smtp, relay.port, sender="info@example.org").content.decode()
    assert "Sender refused: 550 5.7.1 Sender &lt;info@example.org&gt; is not authorized" in html
    assert not Message.objects.exists()


def test_a_disabled_user_shows_the_refused_login(relay, cast, client):
    set_active(cast.acme_smtp, False)
    client.force_login(cast.alice)
    html = post(client, cast.acme_smtp, relay.port).content.decode()
    assert "Login refused: 535 5.7.8 Authentication credentials invalid" in html
    assert cast.acme_smtp_password not in html


def test_a_relay_that_is_down_is_an_outcome_not_an_error_page(cast, client, settings):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings.RELAY_LISTEN = f"127.0.0.1:{port}"
    client.force_login(cast.alice)
    response = post(client, cast.acme_smtp, port)
    assert response.status_code == 200
    assert f"Could not talk to the relay at 127.0.0.1:{port}" in response.content.decode()


def test_only_the_relays_own_ports_are_accepted(relay, cast, client):
    client.force_login(cast.alice)
    html = post(client, cast.acme_smtp, 25 if relay.port != 25 else 26).content.decode()
    assert "Select a valid choice" in html
    assert not AuditEvent.objects.filter(action="smtpuser.test_message").exists()


def test_a_viewer_cannot_send_a_test_message(relay, cast, client):
    client.force_login(cast.victor)
    assert post(client, cast.acme_smtp, relay.port).status_code == 403
    assert not Message.objects.exists()


def test_another_accounts_user_is_not_found(relay, cast, client):
    client.force_login(cast.charlie)
    assert post(client, cast.acme_smtp, relay.port).status_code == 404


def test_get_is_not_allowed(cast, client):
    client.force_login(cast.alice)
    assert client.get(url(cast.acme_smtp)).status_code == 405


def test_auth_login_continuations_are_masked_too(relay, cast):
    password = cast.acme_smtp_password
    client = RecordingSMTP([password, base64.b64encode(password.encode()).decode()])
    client.connect(relay.host, relay.port)
    client.ehlo("test")
    client.user, client.password = cast.acme_smtp.username, password
    code, _ = client.auth("LOGIN", client.auth_login, initial_response_ok=False)
    client.quit()
    assert code == 235
    lines = [(line.who, line.text) for line in client.transcript]
    assert ("client", "AUTH LOGIN") in lines
    assert ("server", "334 VXNlcm5hbWU6") in lines  # "Username:"
    masked = [t for who, t in lines if who == "client" and t == MASK]
    assert len(masked) == 2  # the username and the password answers
    assert all(password not in t for _, t in lines)


def test_it_speaks_implicit_tls_and_starttls(cast, start_relay, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, ["relay.test", "127.0.0.1"])
    relay = start_relay(RELAY_LISTEN="127.0.0.1:0", RELAY_LISTEN_TLS="127.0.0.1:0",
                        RELAY_TLS_CERT=str(cert), RELAY_TLS_KEY=str(key))
    options = {e.tls: e for e in endpoints(relay.listeners)}
    assert set(options) == {"starttls", "implicit"}
    for mode in ("starttls", "implicit"):
        outcome = converse(cast.acme_smtp, "shop@acme.test", "someone@example.net", options[mode])
        assert outcome.ok, (mode, outcome.summary)
        notes = [line.text for line in outcome.transcript if line.who == "note"]
        assert "TLS started (certificate not verified)" in notes
    assert Message.objects.count() == 2


@pytest.mark.parametrize("host,expected", [("0.0.0.0", "127.0.0.1"), ("::", "::1"),
                                           ("192.0.2.7", "192.0.2.7")])
def test_wildcard_listeners_are_reached_over_loopback(host, expected):
    from relay.listen import Listener

    assert endpoints([Listener(host, 587, "starttls")]) == [Endpoint(expected, 587, "starttls")]


def test_a_reload_after_a_test_message_sends_nothing_more(relay, cast, client):
    client.force_login(cast.alice)
    response = client.post(url(cast.acme_smtp), {"sender": "shop@acme.test",
                                                 "recipient": "someone@example.net",
                                                 "port": relay.port})
    assert response.status_code == 302 and response["Location"].endswith("#test-message")
    first = client.get(response["Location"]).content.decode()
    assert "Accepted: 250 2.0.0 Ok: queued as " in first
    again = client.get(response["Location"]).content.decode()
    assert "Accepted: 250" not in again
    assert Message.objects.count() == 1
