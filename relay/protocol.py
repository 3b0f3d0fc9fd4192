"""The SMTP protocol class: aiosmtpd's SMTP with the relay's limits, events and replies."""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import ssl
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP

from relay.handler import (
    AUTH_REQUIRED,
    NULL_SENDER,
    SIZE_EXCEEDED,
    TLS_REQUIRED,
    RelaySession,
)
from relay.listen import Listener
from relay.models import EventKind
from relay.revocation import GuardedCommands

if TYPE_CHECKING:
    from relay.server import RelayServer

GREETING_IDENT = "ESMTP SMTP+ ready"
# aiosmtpd's own replies that the relay contract words differently.
_REWRITES = {
    b"552 Error: message size exceeds fixed maximum message size": SIZE_EXCEEDED.encode(),
    b"552 Error: Too much mail data": SIZE_EXCEEDED.encode(),
}

# `<local@domain>` with a dot-atom local part and a plain host name, then the parameters:
# what nearly every client sends. aiosmtpd's general parser (the email package's RFC 5322
# header parser) costs ~50 µs per address; this gives the same result for these inputs.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_PATH = re.compile(
    rf"<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(.*)\Z", re.DOTALL
)


def quiet_aiosmtpd_logs() -> None:
    """aiosmtpd logs every command at INFO (client data, and a cost per line); keep its
    warnings and errors only."""
    logger = logging.getLogger("mail.log")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


class RelaySMTP(SMTP):
    """aiosmtpd's SMTP with the relay's connection limits, events and reply texts."""

    def __init__(
        self, relay: RelayServer, listener: Listener, tls: ssl.SSLContext | None
    ) -> None:
        cfg = relay.config
        self.relay = relay
        self.listener = listener
        self.client_ip: str | None = None
        self._counted = False
        super().__init__(
            relay.handler,
            data_size_limit=cfg.max_message_size or None,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=cfg.hostname,
            ident=GREETING_IDENT,
            tls_context=tls if listener.tls == "starttls" else None,
            require_starttls=False,
            timeout=cfg.idle_timeout,
            auth_required=False,  # MAIL checks it, to record the event and reply 530
            auth_require_tls=cfg.require_tls and listener.tls != "implicit",
            command_call_limit={"AUTH": 10, "*": 1_000_000},
            loop=relay.loop,
        )
        self._smtp_methods = GuardedCommands(self, self._smtp_methods)

    def __dir__(self) -> list[str]:
        # aiosmtpd's __init__ scans dir(self) and inspect.getmembers(self) for smtp_* and
        # auth_* methods on every connection; listing only those names (the same for
        # every instance) takes a fifth of the per-connection cost away.
        return _smtp_method_names()

    @property
    def is_tls(self) -> bool:
        return self.listener.tls == "implicit" or self._tls_protocol is not None

    def record_event(self, kind: str, reply: str, **fields: Any) -> None:
        """Record an event of this connection; the username, account and SMTP+ user are
        the session's (who logged in, or tried to) unless `fields` name them."""
        session = self.session
        if isinstance(session, RelaySession):
            fields.setdefault("username", session.username or session.username_tried)
            fields.setdefault("account_id", session.account_id)
            fields.setdefault("smtp_user_id", session.smtp_user_id)
        self.relay.record_event(
            kind, client_ip=self.client_ip, port=self.listener.port, reply=reply, **fields
        )

    def _create_session(self) -> RelaySession:
        return RelaySession(self.loop)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.client_ip is None:
            peer = transport.get_extra_info("peername")
            self.client_ip = peer[0] if peer else None
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if self._counted:
            self._counted = False
            self.relay.connection_closed(self)
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        refusal = self.relay.connection_opened(self)
        if refusal is None:
            self._counted = True
            await super()._handle_client()
            return
        await self.push(refusal)
        if self.transport is not None:
            self.transport.close()

    async def smtp_AUTH(self, arg: str) -> None:
        refusal = self.relay.cooloff_refusal(self.client_ip, self.listener.port,
                                             "login attempt during cool-off")
        if refusal is not None:
            await self.push(refusal)
            if self.transport is not None:
                self.transport.close()
            return
        assert self.session is not None
        if (self._auth_require_tls and not self._tls_protocol and self.session.host_name
                and self.session.extended_smtp and arg):
            self.record_event(EventKind.TLS_REQUIRED, TLS_REQUIRED, reason="TLS required")
        await super().smtp_AUTH(arg)

    async def smtp_MAIL(self, arg: str | None) -> None:
        # aiosmtpd answers "MAIL FROM:<>" with a bare syntax error; say what is wrong.
        if arg and arg[:5].upper() == "FROM:" and arg[5:].strip().startswith("<>"):
            session = self.session
            assert isinstance(session, RelaySession)
            if session.host_name:
                if session.authenticated:
                    self.record_event(EventKind.SENDER_REJECTED, NULL_SENDER,
                                      reason="null sender")
                    await self.push(NULL_SENDER)
                else:
                    self.record_event(EventKind.AUTH_REQUIRED, AUTH_REQUIRED)
                    await self.push(AUTH_REQUIRED)
                return
        await super().smtp_MAIL(arg)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        match = _SIMPLE_PATH.match(arg)
        if match is None:
            return super()._getaddr(arg)
        address, rest = match.groups()
        # As the parser does: white space after ">" is skipped, a comment is not simple.
        if rest[:1] in (" ", "\t"):
            rest = rest.lstrip()
        if rest[:1] == "(":
            return super()._getaddr(arg)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    async def push(self, status: str | bytes) -> None:
        if isinstance(status, str):
            status = status.encode("utf-8", "replace")
        rewritten = _REWRITES.get(status)
        if rewritten is not None:
            self.record_event(EventKind.SIZE_EXCEEDED, SIZE_EXCEEDED,
                              reason="over RELAY_MAX_MESSAGE_SIZE")
            status = rewritten
        await super().push(status)


@functools.cache
def _smtp_method_names() -> list[str]:
    return [n for n in dir(RelaySMTP) if n.startswith(("smtp_", "auth_"))]
