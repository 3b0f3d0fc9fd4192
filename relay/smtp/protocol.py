"""The SMTP protocol class: aiosmtpd's SMTP with the relay's limits, events and replies.

One `RelaySMTP` per connection. It reaches its relay process only through the
handler's `RelayContext` (settings, guard, event log, session watch); reply texts come
from `relay.smtp.replies`, path parsing from `relay.smtp.paths`, the TLS handshakes
from `relay.smtp.tls`.
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import functools
import logging
import ssl
from base64 import b64decode, b64encode
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, SMTP, TLSSetupException, _Missing

from relay import dsn_params
from relay.listen import Listener
from relay.models import EventKind
from relay.smtp import dsn_envelope, paths, tls
from relay.smtp.replies import (
    AUTH_ABORTED,
    AUTH_LINE_TOO_LONG,
    AUTH_REQUIRED,
    BAD_AUTH_PARAMETER,
    BAD_BASE64,
    EXTRA_EHLO_LINES,
    GREETING_IDENT,
    NULL_SENDER,
    REWRITES,
    TLS_ALREADY_ACTIVE,
    TLS_REQUIRED,
    UNTERMINATED_RECIPIENT,
    UNTERMINATED_SENDER,
    greeting,
    with_enhanced_code,
)
from relay.smtp.revocation import GuardedCommands
from relay.smtp.session import RelaySession

if TYPE_CHECKING:
    from relay.smtp.handler import RelayHandler

log = logging.getLogger("relay.smtp")

# RFC 4954 section 4: AUTH command and response lines of at least 12,288 octets (a
# Kerberos ticket, say); RFC 5321's 512 applies to the other commands.
AUTH_LINE_LIMIT = 12288


def quiet_aiosmtpd_logs() -> None:
    """aiosmtpd logs every command at INFO (client data, and a cost per line); keep its
    warnings and errors only."""
    logger = logging.getLogger("mail.log")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)


class RelaySMTP(SMTP):
    """aiosmtpd's SMTP with the relay's connection limits, events and reply texts."""

    def __init__(
        self, handler: RelayHandler, listener: Listener, tls: ssl.SSLContext | None
    ) -> None:
        self.context = context = handler.context
        cfg = context.config
        self.listener = listener
        self.client_ip: str | None = None
        self._counted = False
        super().__init__(
            handler,
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
            loop=context.loop,
        )
        self._smtp_methods = GuardedCommands(self, self._smtp_methods)
        # aiosmtpd's limits dict is shared by every connection and cleared by each new
        # one: give each connection its own, with room for RFC 4954's AUTH lines.
        self.command_size_limits = collections.defaultdict(
            lambda: SMTP.command_size_limit, AUTH=AUTH_LINE_LIMIT)
        # The reader must hold a whole AUTH line; DATA lines stay limited by
        # line_length_limit, which aiosmtpd checks on every line it reads.
        reader = self._stream_reader  # type: ignore[attr-defined]
        assert reader is not None
        reader._limit = AUTH_LINE_LIMIT + 2
        self._greeting = greeting(cfg.hostname).encode()
        self._in_helo = False
        # The EHLO reply's lines while aiosmtpd pushes them, written together at its end.
        self._held: list[bytes] | None = None
        # While DATA is read, the idle timeout counts from the last bytes received.
        self._in_data = False
        self._last_received = 0.0
        # Implicit TLS: the TCP connection until the handshake is over (see ImplicitTLS).
        self._raw_transport: asyncio.BaseTransport | None = None

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
        self.context.record_event(
            kind, client_ip=self.client_ip, port=self.listener.port, reply=reply, **fields
        )

    @property
    def relay_session(self) -> RelaySession:
        """The session, typed as the relay's (aiosmtpd types it as its own)."""
        session = self.session
        assert isinstance(session, RelaySession)
        return session

    def _create_session(self) -> RelaySession:
        return RelaySession(self.loop)

    def _create_envelope(self) -> dsn_envelope.RelayEnvelope:
        return dsn_envelope.RelayEnvelope()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.client_ip is None:
            peer = transport.get_extra_info("peername")
            self.client_ip = peer[0] if peer else None
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self.release()
        super().connection_lost(error)

    def admit(self) -> str | None:
        """Count this new connection against its client's limits; the reply (recorded)
        if it must be refused. An admitted connection is released when it closes."""
        refusal = self.context.guard.admit(self.client_ip, self.listener.port)
        if refusal is None:
            self._counted = True
            self.context.open_sessions.add(self)
        return refusal

    def release(self) -> None:
        """Stop counting this connection against its client's limit (once)."""
        if self._counted:
            self._counted = False
            context = self.context
            context.guard.close(self.client_ip)
            context.open_sessions.discard(self)
            context.session_watch.discard(self)

    def hang_up(self) -> None:
        """Close the connection, even one whose TLS handshake is not over."""
        transport = self.transport or self._raw_transport
        if transport is not None:
            transport.close()

    def data_received(self, data: bytes) -> None:
        self._last_received = self.loop.time()
        super().data_received(data)

    def _timeout_cb(self) -> None:
        # During DATA only a client that sent nothing for the idle timeout is cut off:
        # a large message on a slow line may take longer than that in all.
        if self._in_data:
            idle = self.loop.time() - self._last_received
            if idle < self._timeout_duration:
                self._reset_timeout(self._timeout_duration - idle)
                return
        log.info("%s: idle for %ss, connection closed", self.client_ip, self._timeout_duration)
        super()._timeout_cb()

    async def _handle_client(self) -> None:
        # Implicit-TLS connections were counted at accept, before their handshake.
        refusal = None if self._counted else self.admit()
        if refusal is None:
            try:
                await super()._handle_client()
            except (ConnectionError, ssl.SSLError) as exc:
                # The client hung up (possibly in the middle of a reply): nothing to fix.
                log.info("%s: connection lost (%s)", self.client_ip, type(exc).__name__)
            return
        await self.push(refusal)
        if self.transport is not None:
            self.transport.close()

    async def handle_exception(self, error: Exception) -> str:
        # What clients normally do (refuse the certificate, hang up) needs no traceback.
        if isinstance(error, TLSSetupException):
            log.info("%s: TLS handshake failed (%s)", self.client_ip,
                     error.__cause__ or type(error).__name__)
            return ""
        if isinstance(error, (ConnectionError, ssl.SSLError)):
            log.info("%s: connection lost (%s)", self.client_ip, type(error).__name__)
            return ""
        return await super().handle_exception(error)

    async def smtp_HELO(self, hostname: str) -> None:
        self._in_helo = True
        try:
            await super().smtp_HELO(hostname)
        finally:
            self._in_helo = False

    async def smtp_EHLO(self, hostname: str) -> None:
        self._in_helo = True
        self.command_size_limits.pop("MAIL", None)  # EHLO adds to it each time
        # aiosmtpd writes each line of the reply on its own (a send each, and a wake-up
        # of the client each): held here and written as one.
        held: list[bytes] = []
        self._held = held
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_helo = False
            self._held = None
        if held:
            await super().push(b"\r\n".join(held))

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.is_tls:
            await self.push(TLS_ALREADY_ACTIVE)
            return
        if arg or not self.tls_context:
            await super().smtp_STARTTLS(arg)
            return
        await tls.start_tls(self)

    async def smtp_AUTH(self, arg: str) -> None:
        refusal = self.context.guard.admit_login(self.client_ip, self.listener.port)
        if refusal is not None:
            await self.push(refusal)
            if self.transport is not None:
                self.transport.close()
            return
        assert self.session is not None
        if (self._auth_require_tls and not self._tls_protocol and self.session.host_name
                and self.session.extended_smtp and arg):
            self.record_event(EventKind.TLS_REQUIRED, TLS_REQUIRED, reason="TLS required")
        if arg:
            # Mechanism names are case-insensitive (RFC 4954 section 4).
            words = arg.split(None, 1)
            arg = " ".join([words[0].upper(), *words[1:]])
        await super().smtp_AUTH(arg)

    async def challenge_auth(
        self, challenge: str | bytes, encode_to_b64: bool = True,
        log_client_response: bool = False,
    ) -> _Missing | bytes:
        """aiosmtpd's challenge, reading a response line of up to AUTH_LINE_LIMIT octets;
        a longer one is read to its end and refused once, so the next line is a command."""
        if isinstance(challenge, str):
            challenge = challenge.encode()
        await self.push(b"334 " + (b64encode(challenge) if encode_to_b64 else challenge))
        line = await self._read_auth_line()
        if line is None:
            await self.push(AUTH_LINE_TOO_LONG)
            return MISSING
        blob = line.strip()
        if blob == b"*":
            await self.push(AUTH_ABORTED)
            return MISSING
        if blob == b"=":  # a zero-length response, as in an initial response
            return b""
        try:
            return b64decode(blob, validate=True)
        except binascii.Error:
            await self.push(BAD_BASE64)
            return MISSING

    async def _read_auth_line(self) -> bytes | None:
        """The next line, or None if it is over AUTH_LINE_LIMIT (then read and dropped)."""
        try:
            line = await self._reader.readuntil(b"\n")
        except asyncio.IncompleteReadError as exc:
            return exc.partial  # the client closed the connection
        except asyncio.LimitOverrunError as exc:
            await self._reader.read(exc.consumed)
            while True:
                try:
                    await self._reader.readuntil(b"\n")
                    return None
                except asyncio.LimitOverrunError as more:
                    await self._reader.read(more.consumed)
        line = line.rstrip(b"\r\n")
        return None if len(line) > AUTH_LINE_LIMIT else line

    async def smtp_MAIL(self, arg: str | None) -> None:
        taken = await dsn_envelope.take(self, arg, "FROM:", dsn_params.take_mail_params)
        if taken is None:
            return
        arg, ret, envid = taken
        await self._smtp_mail(arg)
        envelope = self.envelope
        if isinstance(envelope, dsn_envelope.RelayEnvelope) and envelope.mail_from:
            envelope.dsn_ret, envelope.dsn_envid = ret, envid

    async def _smtp_mail(self, arg: str | None) -> None:
        if arg and arg[:5].upper() == "FROM:":
            path = arg[5:].strip()
            if paths.unterminated(path):
                await self.push(UNTERMINATED_SENDER)
                return
            assert self.session is not None
            if self.session.extended_smtp and "AUTH=" in path.upper():
                address, params = self._getaddr(path)
                if address is not None and params:
                    kept = paths.without_auth_parameter(params)
                    if kept is None:
                        await self.push(BAD_AUTH_PARAMETER)
                        return
                    # The parser gives the parameters as the end of the path.
                    arg = f"FROM:{path[: len(path) - len(params)]} {kept}"
        # aiosmtpd answers "MAIL FROM:<>" with a bare syntax error; say what is wrong.
        if arg and arg[:5].upper() == "FROM:" and arg[5:].strip().startswith("<>"):
            session = self.relay_session
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

    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg and arg[:3].upper() == "TO:" and paths.unterminated(arg[3:].strip()):
            await self.push(UNTERMINATED_RECIPIENT)
            return
        taken = await dsn_envelope.take(self, arg, "TO:", dsn_params.take_rcpt_params)
        if taken is None:
            return
        arg, notify, orcpt = taken
        envelope = self.envelope
        before = len(envelope.rcpt_tos) if envelope is not None else 0
        await super().smtp_RCPT(arg)
        if isinstance(envelope, dsn_envelope.RelayEnvelope) and len(envelope.rcpt_tos) > before:
            envelope.rcpt_dsn.append((notify, orcpt))

    async def smtp_DATA(self, arg: str) -> None:
        self._last_received = self.loop.time()
        self._in_data = True
        try:
            await super().smtp_DATA(arg)
        finally:
            self._in_data = False

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        simple = paths.simple_path(arg)
        if simple is None:
            return super()._getaddr(arg)
        address, rest = simple
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, rest

    async def push(self, status: str | bytes) -> None:
        if isinstance(status, str):
            if not status:
                return  # handle_exception(): nothing to say to a client that is gone
            status = status.encode("utf-8", "replace")
        rewritten = REWRITES.get(status)
        if rewritten is not None:
            status, kind, reason = rewritten
            envelope = self.envelope
            self.record_event(kind, status.decode(), reason=reason,
                              address=(envelope.mail_from or "") if envelope else "")
        elif status == self._greeting or (self._in_helo and status[:3] == b"250"):
            pass  # RFC 2034: no enhanced code in the greeting and the HELO/EHLO reply
        else:
            status = with_enhanced_code(status)
        held = self._held
        if held is not None:
            if status == b"250 HELP":
                # Extensions aiosmtpd does not list although the relay supports them.
                held.extend(EXTRA_EHLO_LINES)
            held.append(status)
            return
        await super().push(status)


@functools.cache
def _smtp_method_names() -> list[str]:
    return [n for n in dir(RelaySMTP) if n.startswith(("smtp_", "auth_"))]
