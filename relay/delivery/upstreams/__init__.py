"""Where delivered mail goes: `RELAY_UPSTREAM` parsing and the transports.

    smtp://[user:pass@]host:port[?tls=require][&verify=no]   smarthost, STARTTLS if offered
    smtps://[user:pass@]host:port[?verify=no]                smarthost, implicit TLS
    mx[?verify=yes]                                           the recipient domain's MX hosts
    maildir:PATH                                              local Maildir (development)

Every transport answers `send(sender, recipients, raw, dsn=None, sign=None)` with one
`Reply` per recipient and never raises for a network or protocol problem: a refused
connection, a timeout or a lost connection is a temporary (4.x.x) reply like any other.
`dsn` is the message's RFC 3461 request, given to an SMTP server that offers the DSN
extension. `sign`, when given, DKIM-signs the bytes the transport is about to send, after
it has made them fit the upstream (the SMTPUTF8 downgrade), so the signature covers
exactly what goes out.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from django.conf import settings

from relay.delivery.upstreams.maildir import MaildirTransport
from relay.delivery.upstreams.mx import MxTransport
from relay.delivery.upstreams.reply import Reply
from relay.delivery.upstreams.smtp import SmarthostTransport
from relay.delivery.upstreams.spec import parse_upstream
from relay.dsn_params import DsnRequest


class Transport(Protocol):
    label: str

    async def send(
        self, sender: str, recipients: list[str], raw: bytes, dsn: DsnRequest | None = None,
        *, sign: Callable[[bytes], bytes] | None = None,
    ) -> dict[str, Reply]: ...

    async def close(self) -> None: ...


def build_transport(url: str | None = None, timeout: float | None = None) -> Transport:
    spec = parse_upstream(url if url is not None else settings.RELAY_UPSTREAM)
    timeout = float(timeout if timeout is not None else settings.DELIVERY_TIMEOUT)
    if spec.kind == "maildir":
        return MaildirTransport(spec)
    if spec.kind == "mx":
        return MxTransport(spec, timeout)
    return SmarthostTransport(spec, timeout)
