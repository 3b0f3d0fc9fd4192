"""The relay's MAIL / RCPT / DATA judgments, called as plain functions: no socket, no
database. The SMTP tests (test_senders, test_header_block, test_limits, …) keep proving
the wiring: that the handler records these events and sends these replies."""

from __future__ import annotations

import pytest

from accounts.senders import SenderPolicy
from relay.models import EventKind
from relay.smtp import checks, replies
from relay.smtp.accept import HeaderSummary
from relay.smtp.checks import Reject, SessionSnapshot

POLICY = SenderPolicy.from_entries("shop", [("acme.test", False), ("mail.acme.test", True)],
                                   ["boss@other.test"])
SHOP = SessionSnapshot(authenticated=True, username="shop", policy=POLICY, hourly_limit=100,
                       mail_from="news@acme.test", recipients=0)
ANONYMOUS = SessionSnapshot(authenticated=False, username="", policy=None, hourly_limit=None)


def msg(*headers: str, body: str = "Hello") -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n" + body + "\r\n").encode()


# --- MAIL FROM ----------------------------------------------------------------------
@pytest.mark.parametrize(("session", "address", "smtputf8", "expected"), [
    (ANONYMOUS, "news@acme.test", False,
     Reject(replies.AUTH_REQUIRED, EventKind.AUTH_REQUIRED, address="news@acme.test")),
    (SessionSnapshot(True, "shop", None, None), "news@acme.test", False,
     Reject(replies.AUTH_REQUIRED, EventKind.AUTH_REQUIRED, address="news@acme.test")),
    (SHOP, "no-domain", False,
     Reject("553 5.1.7 Sender address rejected: it is not a complete address (name@domain)",
            EventKind.BAD_ADDRESS, "sender address: it is not a complete address (name@domain)",
            "no-domain")),
    (SHOP, "j\u00f6rg@acme.test", False,
     Reject("553 5.1.7 Sender address rejected: it contains non-ASCII characters; send MAIL "
            "FROM with the SMTPUTF8 parameter", EventKind.BAD_ADDRESS,
            "sender address: it contains non-ASCII characters; send MAIL FROM with the "
            "SMTPUTF8 parameter", "j\u00f6rg@acme.test")),
    (SHOP, "a\x01b@acme.test", False,
     Reject("553 5.1.7 Sender address rejected: it contains control characters",
            EventKind.BAD_ADDRESS, "sender address: it contains control characters",
            "a?b@acme.test")),
    (SHOP, "j\u00f6rg@acme.test", True, None),
    (SHOP, "news@acme.test", False, None),
])
def test_mail_from_needs_a_login_and_a_well_formed_address(session, address, smtputf8, expected):
    assert checks.mail_from(session, address, smtputf8) == expected


@pytest.mark.parametrize("address", [
    "news@acme.test", "NEWS@ACME.TEST", "boss@other.test", "x@mail.acme.test",
    "x@eu.mail.acme.test",
])
def test_it_lets_authorized_envelope_senders_pass(address):
    assert checks.envelope_sender(SHOP, address) is None


@pytest.mark.parametrize("address", [
    "news@acme.test.evil.test", "news@evil-acme.test", "x@eu.acme.test", "other@other.test",
])
def test_it_rejects_unauthorized_envelope_senders(address):
    reject = checks.envelope_sender(SHOP, address)
    assert reject is not None
    assert reject.kind == EventKind.SENDER_REJECTED
    assert reject.reply == replies.not_authorized_reply(address, "shop")
    assert reject.reply.startswith(f"550 5.7.1 Sender <{address}> is not authorized for SMTP+ "
                                   "user shop: authorize the address or its domain")
    assert reject.reason == POLICY.check(address).reason
    assert reject.address == address


def test_it_says_how_many_messages_an_hour_the_user_may_send():
    assert checks.over_hourly_limit(SHOP, "news@acme.test") == Reject(
        replies.RATE_LIMITED, EventKind.RATE_LIMITED, "100 messages per hour", "news@acme.test")


# --- RCPT TO ------------------------------------------------------------------------
def test_it_rejects_a_malformed_recipient():
    assert checks.recipient(SHOP, "someone", 10) == Reject(
        "553 5.1.3 Recipient address rejected: it is not a complete address (name@domain)",
        EventKind.BAD_ADDRESS, "recipient address: it is not a complete address (name@domain)",
        "someone")


def test_it_takes_a_non_ascii_recipient_only_with_smtputf8():
    assert checks.recipient(SHOP, "\u00e9l\u00e8ve@b.test", 10) is not None
    utf8 = SessionSnapshot(True, "shop", POLICY, None, smtputf8=True)
    assert checks.recipient(utf8, "\u00e9l\u00e8ve@b.test", 10) is None


@pytest.mark.parametrize(("recipients", "limit", "refused"), [
    (0, 2, False), (1, 2, False), (2, 2, True), (50, 0, False),
])
def test_it_refuses_recipients_over_the_limit(recipients, limit, refused):
    session = SessionSnapshot(True, "shop", POLICY, None, "news@acme.test", recipients)
    reject = checks.recipient(session, "to@b.test", limit)
    if not refused:
        assert reject is None
        return
    assert reject == Reject(replies.TOO_MANY_RECIPIENTS, EventKind.TOO_MANY_RECIPIENTS,
                            f"more than {limit} recipients", "news@acme.test")


# --- DATA ---------------------------------------------------------------------------
def test_it_lets_a_message_from_an_authorized_author_pass_with_its_headers():
    headers = checks.message(SHOP, msg("From: Shop <news@acme.test>", "To: a@b.test",
                                       "Subject: hi"))
    assert isinstance(headers, HeaderSummary)
    assert headers.from_addresses == ["news@acme.test"]


def test_it_rejects_a_message_without_from():
    assert checks.message(SHOP, msg("To: a@b.test", "Subject: hi")) == Reject(
        replies.NO_FROM_HEADER, EventKind.FROM_REJECTED, "no From: header", "news@acme.test")


@pytest.mark.parametrize(("header", "address"), [
    ("From:", "boss@evil.test"), ("Sender:", "x@evil.test"),
])
def test_it_rejects_an_unauthorized_author_header(header, address):
    lines = ["From: news@acme.test", f"{header} {address}"] if header == "Sender:" \
        else [f"From: {address}"]
    reject = checks.message(SHOP, msg(*lines, "To: a@b.test"))
    assert isinstance(reject, Reject)
    assert reject.kind == EventKind.FROM_REJECTED
    assert reject.reply == replies.not_authorized_reply(address, "shop", header)
    assert reject.reply.startswith(f"550 5.7.1 Sender <{address}> in the {header} header is "
                                   "not authorized for SMTP+ user shop")
    assert reject.reason == f"{header} {POLICY.check(address).reason}"
    assert reject.address == address


def test_it_rejects_a_from_header_that_is_not_an_address():
    assert checks.message(SHOP, msg("From: x@-acme.test", "To: a@b.test")) == Reject(
        "550 5.6.0 The From: header 'x@-acme.test' does not contain a valid email address: "
        "use a plain address such as name@your-authorized-domain",
        EventKind.FROM_REJECTED, "From: header is not a valid address", "x@-acme.test")


def test_it_rejects_a_header_block_with_a_malformed_line():
    reject = checks.message(SHOP, b"From: news@acme.test\r\nnot a header\r\n\r\nHello\r\n")
    assert isinstance(reject, Reject)
    assert reject.kind == EventKind.FROM_REJECTED
    assert reject.reply.startswith("550 5.6.0 The message's header block is malformed: ")
    assert reject.reason.startswith("header block cannot be read unambiguously: ")


def test_it_rejects_a_header_block_that_reads_two_ways():
    reject = checks.message(SHOP, msg("From: news@acme.test", "From: boss@evil.test",
                                      "To: a@b.test"))
    assert isinstance(reject, Reject)
    assert reject.kind == EventKind.FROM_REJECTED
    assert reject.reply.startswith("550 5.6.0 The From: header 'boss@evil.test' cannot be "
                                   "read unambiguously: the message has more than one From:")
    assert reject.address == ""  # nothing the console could offer to authorize
    assert reject.reason.startswith("From: header cannot be read unambiguously: ")
