"""The relay's SMTP class parses MAIL FROM / RCPT TO paths exactly like aiosmtpd."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest
from aiosmtpd.smtp import SMTP

from relay.listen import Listener
from relay.smtp.protocol import RelaySMTP
from relay.smtp.server import RelayConfig, RelayServer
from tests.smtp_relay import DEFAULTS

CASES = [
    "<shop@acme.test>", "<shop@acme.test> SIZE=2100", "<a@b.c>SIZE=1",
    "<a@b.c>  SIZE=1  BODY=8BITMIME ", "<a@b.c>\tSMTPUTF8", "<a@b.c> (comment) SIZE=1",
    "<a.b@c.d>", "<a..b@c.d>", "<.a@c.d>", '<"q r"@c.d>', "<a@[192.0.2.1]>", "<a@b.c.>",
    "<a@-b.c>", "<a@b>", "<@x.y:a@b.c>", "<a@b.c", "<a@b.c>>", "<a@b .c>", "<A@B.C>",
    "<a@b.c> \u3000SIZE=1", "<a@b.c>\x0bSIZE=1", "<a@b.c> \n SIZE=1", "<a@b.c>\n",
    "<>", "", "a@b.c", "<a\x00@b.c>", "<j\u00f6rg@b.c>", "<a@b\u00e9.c>", "<a@b.c> (x",
    "<o'neil+tag=1@b-c.d>", "<{}|~^`@b.c>", "<a@1.2.3.4>", "< a@b.c>", "<a @b.c>",
]


@pytest.fixture(scope="module")
def parsers() -> Iterator[tuple[RelaySMTP, SMTP]]:
    loop = asyncio.new_event_loop()
    relay = RelayServer(RelayConfig.from_settings(**DEFAULTS), loop)
    ours = RelaySMTP(relay.handler, Listener("127.0.0.1", 2525, "none"), None)
    theirs = SMTP(object(), hostname="relay.test", loop=loop)
    yield ours, theirs
    relay.db_threads.executor.shutdown()
    loop.close()


def random_paths(count: int) -> Iterator[str]:
    rng = random.Random(1)
    atext = "aZ09!#$%&'*+/=?^_`{|}~-"
    odd = ' ."()<>@[]:;,\\\t\x00\u00e9\u3000'

    def word(chars: str) -> str:
        return "".join(rng.choice(chars) for _ in range(rng.randint(0, 4)))

    for _ in range(count):
        local_chars = atext + (odd if rng.random() < 0.2 else "")
        domain_chars = "ab09-" + (odd if rng.random() < 0.2 else "")
        local = ".".join(word(local_chars) for _ in range(rng.randint(1, 3)))
        domain = ".".join(word(domain_chars) for _ in range(rng.randint(1, 3)))
        rest = rng.choice(["", " SIZE=10", "SIZE=10", "  BODY=8BITMIME", " (c) X", "\t X", ">",
                           word(odd)])
        yield f"<{local}@{domain}>{rest}" if rng.random() < 0.9 else f"{local}@{domain}{rest}"


def parsed(parser: SMTP, path: str) -> object:
    try:
        return parser._getaddr(path)
    except Exception as exc:  # the email package's parser raises on some odd input
        return type(exc)


def test_it_parses_paths_exactly_like_aiosmtpd(parsers):
    ours, theirs = parsers
    for path in [*CASES, *random_paths(5000)]:
        assert parsed(ours, path) == parsed(theirs, path), repr(path)


def test_it_keeps_aiosmtpds_local_part_limit(parsers):
    ours, theirs = parsers
    ours.local_part_limit = theirs.local_part_limit = 4
    try:
        for path in ["<abcd@b.c>", "<abcde@b.c>", "<a.b.c@d.e> SIZE=1"]:
            assert ours._getaddr(path) == theirs._getaddr(path), path
        assert ours._getaddr("<abcde@b.c>") == (None, None)
    finally:
        ours.local_part_limit = theirs.local_part_limit = 0
