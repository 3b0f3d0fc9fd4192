"""The From:/Sender: check over real SMTP: the relay refuses every header block it cannot
read unambiguously (550 5.6.0, recorded as a relay event), and for every form it accepts,
independent readers of the stored message see the same authorized author."""

from __future__ import annotations

import smtplib

from relay.explain import explain_relay_event
from relay.models import EventKind, Message, RelayEvent
from tests.relay.smtp.header_forms import ACCEPTED, REFUSED, UNAUTHORIZED, message
from tests.relay.smtp.mail_readers import node_readings, python_authors


def logged_in(relay, cast) -> smtplib.SMTP:
    smtp = smtplib.SMTP(relay.host, relay.port, timeout=10)
    smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    return smtp


def send_raw(smtp: smtplib.SMTP, raw: bytes) -> tuple[int, str]:
    """DATA with `raw` exactly as given (smtplib.data() would rewrite bare CR and LF)."""
    assert not raw.startswith(b".") and b"\n." not in raw  # nothing to dot-stuff
    assert smtp.mail("shop@acme.test")[0] == 250
    assert smtp.rcpt("someone@example.net")[0] == 250
    assert smtp.docmd("DATA")[0] == 354
    smtp.send(raw + (b".\r\n" if raw.endswith(b"\r\n") else b"\r\n.\r\n"))
    code, reply = smtp.getreply()
    return code, reply.decode()


def by_field(authors: list[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for header, address in authors:
        found.setdefault(header.rstrip(":").lower(), []).append(address.lower())
    return found


def lower(reading: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: [a.lower() for a in addresses] for name, addresses in reading.items()}


def test_it_refuses_an_address_as_an_unquoted_display_name_naming_the_header(relay, cast):
    with logged_in(relay, cast) as smtp:
        code, reply = send_raw(smtp, message(b"From: sales@acme.test <evil@evil.example>\r\n"))
    assert code == 550
    assert reply == (
        "5.6.0 The From: header 'sales@acme.test <evil@evil.example>' cannot be read "
        "unambiguously: it does not parse cleanly: invalid address in address-list; use "
        'plain addresses such as name@your-authorized-domain or "Name" '
        "<name@your-authorized-domain>"
    )
    assert not Message.objects.exists()
    relay.flush()
    event = RelayEvent.objects.get(kind=EventKind.FROM_REJECTED)
    assert event.reply == f"550 {reply}"
    assert event.reason == (
        "From: header cannot be read unambiguously: it does not parse cleanly: "
        "invalid address in address-list")
    assert event.smtp_user == cast.acme_smtp
    # Alerts and the console explain it as unreadable, not as "authorize this address".
    reading = explain_relay_event(event.kind, event.reason, event.address)
    assert reading.key == "header_unreadable"
    assert "one From: header with plain addresses" in reading.what_to_do


def test_it_refuses_a_line_that_is_neither_a_field_nor_a_continuation(relay, cast):
    block = b"From: shop@acme.test\r\nevil@evil.example\r\n"
    with logged_in(relay, cast) as smtp:
        code, reply = send_raw(smtp, message(block))
    assert code == 550
    assert reply == (
        "5.6.0 The message's header block is malformed: line 2 is neither a header field "
        "(name: value) nor a continuation line: 'evil@evil.example'; end every header line "
        "with CRLF and the header block with an empty line"
    )
    relay.flush()
    assert RelayEvent.objects.get(kind=EventKind.FROM_REJECTED).reason == (
        "header block cannot be read unambiguously: line 2 is neither a header field "
        "(name: value) nor a continuation line")


def test_it_refuses_every_form_it_cannot_read_unambiguously(relay, cast):
    wrong, replies = [], set()
    with logged_in(relay, cast) as smtp:
        for name, block, start, why in REFUSED:
            code, reply = send_raw(smtp, message(block))
            replies.add(f"{code} {reply}")
            if code != 550 or not reply.startswith(start) or why not in reply:
                wrong.append((name, code, reply))
    assert not wrong
    assert not Message.objects.exists()
    relay.flush()
    events = RelayEvent.objects.filter(kind=EventKind.FROM_REJECTED)
    assert {e.reply for e in events} == replies
    assert all("cannot be read unambiguously: " in e.reason for e in events)


def test_it_refuses_clean_headers_that_name_an_unauthorized_author(relay, cast):
    wrong = []
    with logged_in(relay, cast) as smtp:
        for name, block, fragment in UNAUTHORIZED:
            code, reply = send_raw(smtp, message(block))
            if code != 550 or not reply.startswith("5.7.1 Sender ") or fragment not in reply:
                wrong.append((name, code, reply))
    assert not wrong
    assert not Message.objects.exists()
    relay.flush()
    assert set(RelayEvent.objects.values_list("address", flat=True)) == {"evil@evil.example"}


def test_independent_readers_see_the_authorized_author_of_every_accepted_form(relay, cast):
    queued = {}
    with logged_in(relay, cast) as smtp:
        for name, block, authors in ACCEPTED:
            code, reply = send_raw(smtp, message(block))
            assert code == 250, (name, reply)
            queued[reply.rpartition(" ")[2]] = (name, by_field(authors))
    stored = {m.queue_id: bytes(m.raw) for m in Message.objects.all()}
    assert stored.keys() == queued.keys()
    raws = [stored[queue_id] for queue_id in queued]
    wrong = []
    for (name, expected), raw, node in zip(queued.values(), raws, node_readings(raws),
                                          strict=True):
        shown = {k: v for k, v in expected.items() if k in ("from", "sender")}
        python = lower(python_authors(raw))
        if python != expected or lower(node["fields"]) != expected or lower(node["shown"]) != shown:
            wrong.append((name, expected, python, node))
    assert not wrong
