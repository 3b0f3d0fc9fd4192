"""Sender authorization: the envelope sender at MAIL FROM, From:/Sender: at end of DATA."""

from __future__ import annotations

import smtplib

import pytest

from relay.models import EventKind, Message, RelayEvent
from tests.senders import authorize_email
from tests.smtp_relay import dialog, message

WHAT_TO_DO = "authorize the address or its domain for this user in the SMTP+ console"


def logged_in(relay, cast) -> smtplib.SMTP:
    smtp = smtplib.SMTP(relay.host, relay.port, timeout=10)
    smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    return smtp


def test_it_rejects_an_unauthorized_envelope_sender_and_says_what_to_fix(relay, cast):
    with logged_in(relay, cast) as smtp:
        code, reply = smtp.mail("boss@globex.test")
    assert code == 550
    assert reply.decode() == (
        f"5.7.1 Sender <boss@globex.test> is not authorized for SMTP+ user "
        f"{cast.acme_smtp.username}: {WHAT_TO_DO}"
    )
    relay.flush()
    event = RelayEvent.objects.get(kind=EventKind.SENDER_REJECTED)
    assert event.address == "boss@globex.test"
    assert event.smtp_user == cast.acme_smtp
    assert "neither the address boss@globex.test nor the domain globex.test" in event.reason
    assert event.reply.startswith("550 5.7.1 Sender <boss@globex.test>")


@pytest.mark.parametrize("sender", [
    "shop@acme.test.evil.net",
    "shop@evil-acme.test",
    "shop@sub.acme.test",
    "shop@acme.testx",
])
def test_look_alike_domains_are_not_authorized(relay, cast, sender):
    with logged_in(relay, cast) as smtp:
        code, reply = smtp.mail(sender)
    assert code == 550, reply
    assert f"<{sender}>".encode() in reply


def test_an_authorized_address_on_another_domain_is_enough(relay, cast):
    authorize_email(cast.acme_smtp, "alerts@globex.test")
    with logged_in(relay, cast) as smtp:
        assert smtp.mail("ALERTS@globex.test")[0] == 250


def test_it_refuses_the_null_sender_for_submission(relay, cast):
    with logged_in(relay, cast) as smtp:
        code, reply = smtp.mail("")
    assert code == 550
    assert reply.startswith(b"5.7.1 The null sender <> cannot be used")


def test_it_rejects_an_unauthorized_from_header_at_end_of_data(relay, cast):
    with logged_in(relay, cast) as smtp:
        smtp.mail("shop@acme.test")
        smtp.rcpt("someone@example.net")
        code, reply = smtp.data(message(from_="CEO <ceo@globex.test>"))
    assert code == 550
    assert reply.decode() == (
        f"5.7.1 Sender <ceo@globex.test> in the From: header is not authorized for "
        f"SMTP+ user {cast.acme_smtp.username}: {WHAT_TO_DO}"
    )
    assert not Message.objects.exists()
    relay.flush()
    event = RelayEvent.objects.get(kind=EventKind.FROM_REJECTED)
    assert event.address == "ceo@globex.test"
    assert event.reason.startswith("From: neither the address")


@pytest.mark.parametrize("from_", [
    '"shop@acme.test" <ceo@globex.test>',  # authorized-looking display name
    "Shop <shop@acme.test>, CEO <ceo@globex.test>",  # a second author
    "shop@acme.test@globex.test",
])
def test_from_header_tricks_are_rejected(relay, cast, from_):
    with logged_in(relay, cast) as smtp:
        smtp.mail("shop@acme.test")
        smtp.rcpt("someone@example.net")
        code, _ = smtp.data(message(from_=from_))
    assert code == 550
    assert not Message.objects.exists()


def test_an_unparsable_from_header_is_refused_as_unreadable_not_as_unauthorized(relay, cast):
    with logged_in(relay, cast) as smtp:
        smtp.mail("shop@acme.test")
        smtp.rcpt("someone@example.net")
        code, reply = smtp.data(message(from_="<b>Evil</b> <ceo@evil.test>"))
    assert code == 550
    text = reply.decode()
    assert text.startswith("5.6.0 The From: header")
    assert "cannot be read unambiguously" in text
    assert "is not authorized" not in text
    assert not Message.objects.exists()
    relay.flush()
    event = RelayEvent.objects.get(kind=EventKind.FROM_REJECTED)
    assert event.reason.startswith("From: header cannot be read unambiguously: ")
    assert event.address == ""  # nothing the console could offer to authorize


def test_a_message_without_a_from_header_is_refused(relay, cast):
    with logged_in(relay, cast) as smtp:
        smtp.mail("shop@acme.test")
        smtp.rcpt("someone@example.net")
        code, reply = smtp.data(b"Subject: no author\r\n\r\nHello\r\n")
    assert code == 550
    assert reply.decode().startswith("5.6.0 The message has no From: header")
    assert not Message.objects.exists()


def test_it_checks_the_sender_header_too(relay, cast):
    with logged_in(relay, cast) as smtp:
        smtp.mail("shop@acme.test")
        smtp.rcpt("someone@example.net")
        code, reply = smtp.data(message(extra="Sender: bulk@globex.test\r\n"))
    assert code == 550
    assert b"<bulk@globex.test> in the Sender: header" in reply


def test_an_rfc2047_display_name_is_fine_when_the_address_is_authorized(relay, cast):
    with logged_in(relay, cast) as smtp:
        smtp.mail("shop@acme.test")
        smtp.rcpt("someone@example.net")
        code, _ = smtp.data(message(from_="=?utf-8?Q?Caf=C3=A9?= <shop@acme.test>"))
    assert code == 250


def test_a_user_without_authorized_senders_cannot_send(relay, cast):
    cast.acme_smtp.authorized_domains.all().delete()
    with logged_in(relay, cast) as smtp:
        code, _ = smtp.mail("shop@acme.test")
    assert code == 550
    relay.flush()
    assert RelayEvent.objects.get(kind=EventKind.SENDER_REJECTED).reason == (
        f"SMTP+ user {cast.acme_smtp.username} has no authorized senders")


def test_senders_are_checked_only_after_login(relay, cast):
    replies = dialog(relay.host, relay.port, [b"EHLO c", b"MAIL FROM:<>"])
    assert replies[2] == "530 5.7.0 Authentication required"
