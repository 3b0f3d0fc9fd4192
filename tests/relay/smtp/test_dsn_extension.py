"""The DSN extension (RFC 3461) on our relay: advertised, its parameters accepted,
checked and stored as the client wrote them."""

from __future__ import annotations

import base64

import pytest

from relay.dsn_params import DsnParamError, parse_notify, xtext_decode, xtext_encode
from relay.models import Message
from tests.smtp_relay import dialog, message

pytestmark = pytest.mark.django_db(transaction=True)


def login_line(cast) -> bytes:  # noqa: ANN001
    blob = f"\0{cast.acme_smtp.username}\0{cast.acme_smtp_password}".encode()
    return b"AUTH PLAIN " + base64.b64encode(blob)


def test_ehlo_advertises_dsn(relay):
    replies = dialog(relay.host, relay.port, [b"EHLO client.test"])
    assert "250-DSN" in replies[1].splitlines()


def test_notify_ret_envid_and_orcpt_are_accepted_and_stored_as_written(relay, cast):
    replies = dialog(relay.host, relay.port, [
        b"EHLO client.test", login_line(cast),
        b"MAIL FROM:<shop@acme.test> RET=hdrs ENVID=Order+2B42",
        b"RCPT TO:<bob@example.net> NOTIFY=delay,failure ORCPT=rfc822;Bob+40Example.net",
        b"RCPT TO:<eve@example.net> NOTIFY=NEVER",
        b"RCPT TO:<ann@example.net>",
        b"DATA", message().rstrip(b"\r\n") + b"\r\n.",
    ])
    assert all(r.startswith("250") for r in replies[3:7]), replies
    assert replies[8].startswith("250 2.0.0 Ok: queued"), replies
    stored = Message.objects.get()
    assert (stored.dsn_ret, stored.dsn_envid) == ("HDRS", "Order+42")
    rows = {r.address: (r.notify, r.orcpt) for r in stored.recipients.all()}
    assert rows == {
        "bob@example.net": ("FAILURE,DELAY", "rfc822;Bob@Example.net"),
        "eve@example.net": ("NEVER", ""),
        "ann@example.net": ("", ""),
    }


@pytest.mark.parametrize(("line", "says"), [
    (b"RCPT TO:<bob@example.net> NOTIFY=NEVER,SUCCESS", "NOTIFY must be NEVER"),
    (b"RCPT TO:<bob@example.net> NOTIFY=SOMETIMES", "NOTIFY must be NEVER"),
    (b"RCPT TO:<bob@example.net> ORCPT=bob@example.net", "ORCPT must be addr-type;address"),
    (b"RCPT TO:<bob@example.net> ORCPT=rfc822;bob+4", "ORCPT is not valid xtext"),
])
def test_a_bad_rcpt_dsn_parameter_is_refused_naming_it(relay, cast, line, says):
    replies = dialog(relay.host, relay.port, [
        b"EHLO client.test", login_line(cast), b"MAIL FROM:<shop@acme.test>", line,
    ])
    assert replies[4].startswith("501 5.5.4 ") and says in replies[4], replies[4]


@pytest.mark.parametrize(("line", "says"), [
    (b"MAIL FROM:<shop@acme.test> RET=ALL", "RET must be FULL or HDRS"),
    (b"MAIL FROM:<shop@acme.test> ENVID=" + b"x" * 101, "ENVID must be 1 to 100"),
])
def test_a_bad_mail_dsn_parameter_is_refused_naming_it(relay, cast, line, says):
    replies = dialog(relay.host, relay.port, [b"EHLO client.test", login_line(cast), line])
    assert replies[3].startswith("501 5.5.4 ") and says in replies[3], replies[3]


def test_xtext_round_trips():
    assert xtext_decode("a+2Bb+3Dc") == "a+b=c"
    assert xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d"
    with pytest.raises(ValueError):
        xtext_decode("a+2g")


def test_notify_words_are_normalised():
    assert parse_notify("delay,SUCCESS") == "SUCCESS,DELAY"
    with pytest.raises(DsnParamError):
        parse_notify("FAILURE,FAILURE")
