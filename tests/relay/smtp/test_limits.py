"""Limits: message size, recipients, hourly rate, connections per IP, bad addresses."""

from __future__ import annotations

import smtplib
import socket
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import SmtpUser
from relay.models import EventKind, Message, RelayEvent
from tests.smtp_relay import dialog, message


def logged_in(relay, cast) -> smtplib.SMTP:
    smtp = smtplib.SMTP(relay.host, relay.port, timeout=10)
    smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    return smtp


def login_lines(cast) -> list[bytes]:
    import base64

    blob = base64.b64encode(f"\0{cast.acme_smtp.username}\0{cast.acme_smtp_password}".encode())
    return [b"EHLO client.test", b"AUTH PLAIN " + blob]


SMALL = {"RELAY_MAX_MESSAGE_SIZE": 2000}


@pytest.mark.parametrize("relay", [SMALL], indirect=True)
def test_it_advertises_size_and_refuses_an_oversize_size_parameter(relay, cast):
    replies = dialog(relay.host, relay.port, login_lines(cast) + [
        b"MAIL FROM:<shop@acme.test> SIZE=5000",
    ])
    assert "250-SIZE 2000" in replies[1]
    assert replies[3] == "552 5.3.4 Message size exceeds fixed maximum message size"


@pytest.mark.parametrize("relay", [SMALL], indirect=True)
def test_it_refuses_oversize_data_even_without_a_size_parameter(relay, cast):
    with logged_in(relay, cast) as smtp:
        smtp.mail("shop@acme.test")
        smtp.rcpt("someone@example.net")
        code, reply = smtp.data(message(body=b"x" * 70 + b"\r\n") * 40)
        assert (code, reply) == (552, b"5.3.4 Message size exceeds fixed maximum message size")
        # The session goes on: a small message is still accepted.
        assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
    assert Message.objects.count() == 1
    relay.flush()
    assert RelayEvent.objects.filter(kind=EventKind.SIZE_EXCEEDED).exists()


@pytest.mark.parametrize("relay", [{"RELAY_MAX_RECIPIENTS": 2}], indirect=True)
def test_it_refuses_recipients_over_the_limit_and_keeps_the_first_ones(relay, cast):
    with logged_in(relay, cast) as smtp:
        smtp.mail("shop@acme.test")
        assert smtp.rcpt("a@example.net")[0] == 250
        assert smtp.rcpt("b@example.net")[0] == 250
        assert smtp.rcpt("c@example.net") == (452, b"4.5.3 Too many recipients")
        assert smtp.data(message())[0] == 250
    assert list(Message.objects.get().recipients.values_list("address", flat=True)) == [
        "a@example.net", "b@example.net"]
    relay.flush()
    assert RelayEvent.objects.filter(kind=EventKind.TOO_MANY_RECIPIENTS).exists()


def test_it_stops_a_user_at_its_hourly_limit(relay, cast):
    SmtpUser.objects.filter(pk=cast.acme_smtp.pk).update(hourly_limit=3)
    # One message already sent this hour (by another relay process, say).
    Message.objects.create(account=cast.acme, smtp_user=cast.acme_smtp, queue_id="EARLIER",
                           envelope_from="shop@acme.test", created=timezone.now())
    with logged_in(relay, cast) as smtp:
        assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
        assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
        assert smtp.mail("shop@acme.test") == (
            451, b"4.7.1 Sending rate limit exceeded, try again later")
    # Other users are not affected.
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.globex_smtp.username, cast.globex_smtp_password)
        assert smtp.sendmail("crm@globex.test", ["a@example.net"],
                             message(from_="crm@globex.test")) == {}
    relay.flush()
    event = RelayEvent.objects.get(kind=EventKind.RATE_LIMITED)
    assert event.smtp_user == cast.acme_smtp
    assert event.reason == "3 messages per hour"


def test_a_session_kept_open_at_its_hourly_limit_may_send_again_once_the_hour_moves_on(
    relay, cast,
):
    SmtpUser.objects.filter(pk=cast.acme_smtp.pk).update(hourly_limit=2)
    with logged_in(relay, cast) as smtp:
        assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
        assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
        assert smtp.mail("shop@acme.test")[0] == 451
        smtp.rset()
        # The two messages leave the hour, and the count in memory is over a minute old.
        Message.objects.update(created=timezone.now() - timedelta(hours=2))
        relay.server.guard.hourly.clock = lambda: time.monotonic() + 61
        assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
    assert Message.objects.count() == 3


@pytest.mark.parametrize("relay", [{"RELAY_MAX_CONNECTIONS_PER_IP": 2}], indirect=True)
def test_it_caps_concurrent_connections_per_client_ip(relay):
    first = socket.create_connection((relay.host, relay.port), timeout=5)
    second = socket.create_connection((relay.host, relay.port), timeout=5)
    try:
        assert first.recv(100).startswith(b"220 ")
        assert second.recv(100).startswith(b"220 ")
        assert dialog(relay.host, relay.port, [])[0] == (
            "421 4.7.0 Too many connections from your address, try again later")
    finally:
        first.close()
        second.close()
    relay.flush()
    assert RelayEvent.objects.filter(kind=EventKind.CONNECTION_LIMIT).exists()


@pytest.mark.parametrize("relay", [{"RELAY_IDLE_TIMEOUT": 1}], indirect=True)
def test_it_drops_idle_connections(relay):
    with socket.create_connection((relay.host, relay.port), timeout=5) as sock:
        assert sock.recv(100).startswith(b"220 ")
        assert sock.recv(100) == b""  # closed by the relay after a second


@pytest.mark.parametrize(("command", "expected"), [
    (b"MAIL FROM:<sh\x00op@acme.test>", "553 5.1.7 Sender address rejected: it contains a NUL, CR or LF character"),
    (b"MAIL FROM:<sh\rop@acme.test>", "553 5.1.7 Sender address rejected: it contains a NUL, CR or LF character"),
    ("MAIL FROM:<sh\u00f6p@acme.test>".encode(), "553 5.1.7 Sender address rejected: it contains non-ASCII characters; send MAIL FROM with the SMTPUTF8 parameter"),
    (b"MAIL FROM:<shop@acme.test\xff>", "553 5.1.7 Sender address rejected: it is not valid UTF-8"),
])
def test_it_refuses_malformed_sender_addresses_saying_why(relay, cast, command, expected):
    replies = dialog(relay.host, relay.port, login_lines(cast) + [command])
    assert replies[3] == expected


def test_a_malformed_sender_is_recorded_as_an_event(relay, cast):
    dialog(relay.host, relay.port, login_lines(cast) + [b"MAIL FROM:<sh\x00op@acme.test>"])
    relay.flush()
    assert RelayEvent.objects.filter(kind=EventKind.BAD_ADDRESS).exists()


def test_it_refuses_malformed_recipients_saying_why(relay, cast):
    replies = dialog(relay.host, relay.port, login_lines(cast) + [
        b"MAIL FROM:<shop@acme.test>",
        b"RCPT TO:<a\x00b@example.net>",
        "RCPT TO:<j\u00fcrgen@example.net>".encode(),
        b"RCPT TO:<nobody>",
    ])
    assert replies[4] == "553 5.1.3 Recipient address rejected: it contains a NUL, CR or LF character"
    assert replies[5] == ("553 5.1.3 Recipient address rejected: it contains non-ASCII "
                          "characters; send MAIL FROM with the SMTPUTF8 parameter")
    assert replies[6] == "553 5.1.3 Recipient address rejected: it is not a complete address (name@domain)"
