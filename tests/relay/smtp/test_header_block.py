"""The header block as the relay reads it (relay.headerblock, via accept.parse_headers),
checked against independent readers: what it accepts, they read the same way."""

from __future__ import annotations

import pytest

from relay.smtp.accept import parse_headers
from tests.relay.smtp.header_forms import ACCEPTED, REFUSED, UNAUTHORIZED, message
from tests.relay.smtp.mail_readers import node_readings, python_authors


def by_field(authors: list[tuple[str, str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for header, address in authors:
        found.setdefault(header.rstrip(":").lower(), []).append(address.lower())
    return found


def lower(reading: dict[str, list[str]]) -> dict[str, list[str]]:
    return {name: [a.lower() for a in addresses] for name, addresses in reading.items()}


@pytest.mark.parametrize(("block", "authors"), [f[1:] for f in ACCEPTED],
                         ids=[f[0] for f in ACCEPTED])
def test_it_reads_the_author_fields_of_clean_header_blocks(block, authors):
    summary = parse_headers(message(block))
    assert summary.unreadable is None
    assert summary.authors == authors
    assert summary.from_addresses == [a for h, a in authors if h == "From:"]


@pytest.mark.parametrize(("block", "authors"), [f[1:] for f in ACCEPTED],
                         ids=[f[0] for f in ACCEPTED])
def test_the_email_package_reads_every_accepted_form_the_same_way(block, authors):
    raw = message(block)
    assert lower(python_authors(raw)) == by_field(parse_headers(raw).authors) == by_field(authors)


def test_mailparser_reads_every_accepted_form_the_same_way():
    raws = [message(block) for _, block, _ in ACCEPTED]
    readings = node_readings(raws)
    wrong = []
    for (name, _, authors), raw, reading in zip(ACCEPTED, raws, readings, strict=True):
        expected = by_field(parse_headers(raw).authors)
        shown = {k: v for k, v in expected.items() if k in ("from", "sender")}
        if lower(reading["fields"]) != expected or lower(reading["shown"]) != shown:
            wrong.append((name, expected, reading))
        assert expected == by_field(authors)
    assert not wrong


@pytest.mark.parametrize(("block", "header", "why"), [f[1:] for f in REFUSED],
                         ids=[f[0] for f in REFUSED])
def test_it_refuses_header_blocks_it_cannot_read_unambiguously(block, header, why):
    problem = parse_headers(message(block)).unreadable
    assert problem is not None
    expected_header = header.removeprefix("5.6.0 The ").removesuffix(" header")
    assert problem.header == ("" if header.startswith("5.6.0 The message's") else expected_header)
    assert why in problem.why


@pytest.mark.parametrize(("block", "reply"), [f[1:] for f in UNAUTHORIZED],
                         ids=[f[0] for f in UNAUTHORIZED])
def test_clean_headers_yield_every_author_to_check(block, reply):
    summary = parse_headers(message(block))
    assert summary.unreadable is None
    header, _, address = reply.partition("> in the ")[2], None, reply.split(">")[0][1:]
    assert (header.removesuffix(" header"), address) in summary.authors


def test_the_header_block_ends_at_the_first_empty_line():
    raw = b"From: shop@acme.test\r\n\r\nFrom evil@evil.example\r\nnot a header\r\n"
    summary = parse_headers(raw)
    assert summary.unreadable is None
    assert summary.authors == [("From:", "shop@acme.test")]


def test_obsolete_blanks_before_the_colon_are_read_as_a_field_elsewhere():
    summary = parse_headers(b"Subject : Hi\r\nFrom: shop@acme.test\r\n\r\nBody\r\n")
    assert summary.unreadable is None
    assert summary.subject == "Hi"


def test_a_message_without_headers_has_no_author():
    summary = parse_headers(b"\r\nFrom: shop@acme.test\r\n")
    assert summary.unreadable is None
    assert summary.authors == []


def test_the_refused_tricks_show_another_author_in_a_mail_reader():
    # Why they are refused: mailparser (as Node mail readers) shows evil@ as the author
    # (or the Sender:) where a lenient reading of the same block finds only shop@.
    tricks = {name: block for name, block, *_ in REFUSED}
    names = ["address as an unquoted display name", "bare CR between two fields",
             "header block starting with a continuation", "obsolete Sender :"]
    readings = node_readings([message(tricks[name]) for name in names])
    for name, reading in zip(names, readings, strict=True):
        shown = [a for addresses in reading["shown"].values() for a in addresses]
        assert "evil@evil.example" in shown, (name, reading)
