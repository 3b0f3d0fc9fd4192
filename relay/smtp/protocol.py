"""The SMTP protocol class: aiosmtpd's SMTP with the relay's limits, events and replies."""

from __future__ import annotations

import asyncio
import binascii
import collections
import functools
import logging
import re
import ssl
from asyncio import sslproto
from base64 import b64decode, b64encode
from email._header_value_parser import get_angle_addr
from email.errors import HeaderParseError
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, SMTP, TLSSetupException, _Missing

from relay.listen import Listener
from relay.models import EventKind
from relay.smtp.handler import (
    AUTH_REQUIRED,
    NULL_SENDER,
    SIZE_EXCEEDED,
    TLS_REQUIRED,
    RelaySession,
)
from relay.smtp.replies import (
    AUTH_ABORTED,
    AUTH_LINE_TOO_LONG,
    BAD_AUTH_PARAMETER,
    BAD_BASE64,
    LINE_TOO_LONG,
    TLS_ALREADY_ACTIVE,
    UNTERMINATED_RECIPIENT,
    UNTERMINATED_SENDER,
    with_enhanced_code,
)
from relay.smtp.revocation import GuardedCommands

if TYPE_CHECKING:
    from relay.smtp.server import RelayServer

log = logging.getLogger("relay.smtp")

GREETING_IDENT = "ESMTP SMTP+ ready"
# RFC 4954 section 4: AUTH command and response lines of at least 12,288 octets (a
# Kerberos ticket, say); RFC 5321's 512 applies to the other commands.
AUTH_LINE_LIMIT = 12288
# aiosmtpd's own replies that the relay contract words differently, with the event each
# one records (kind and reason).
_REWRITES = {
    b"552 Error: message size exceeds fixed maximum message size":
        (SIZE_EXCEEDED.encode(), EventKind.SIZE_EXCEEDED, "over RELAY_MAX_MESSAGE_SIZE"),
    b"552 Error: Too much mail data":
        (SIZE_EXCEEDED.encode(), EventKind.SIZE_EXCEEDED, "over RELAY_MAX_MESSAGE_SIZE"),
    b"500 Line too long (see RFC5321 4.5.3.1.6)":
        (LINE_TOO_LONG.encode(), EventKind.BAD_MESSAGE,
         "a line of the message is over 998 characters (RFC 5322 2.1.1)"),
}
# RFC 4954 section 5: the AUTH parameter of MAIL FROM is "<>" or an xtext addr-spec.
_AUTH_PARAM = re.compile(r"(?:\A|\s)AUTH=(\S*)", re.IGNORECASE)
_XTEXT = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})+\Z")

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
        # aiosmtpd's limits dict is shared by every connection and cleared by each new
        # one: give each connection its own, with room for RFC 4954's AUTH lines.
        self.command_size_limits = collections.defaultdict(
            lambda: SMTP.command_size_limit, AUTH=AUTH_LINE_LIMIT)
        # The reader must hold a whole AUTH line; DATA lines stay limited by
        # line_length_limit, which aiosmtpd checks on every line it reads.
        reader = self._stream_reader  # type: ignore[attr-defined]
        assert reader is not None
        reader._limit = AUTH_LINE_LIMIT + 2
        self._greeting = f"220 {cfg.hostname} {GREETING_IDENT}".encode()
        self._in_helo = False
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
        self.release()
        super().connection_lost(error)

    def release(self) -> None:
        """Stop counting this connection against its client's limit (once)."""
        if self._counted:
            self._counted = False
            self.relay.connection_closed(self)

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
        refusal = None if self._counted else self.relay.connection_opened(self)
        if refusal is None:
            self._counted = True
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
        try:
            await super().smtp_EHLO(hostname)
        finally:
            self._in_helo = False

    async def smtp_STARTTLS(self, arg: str) -> None:
        if self.is_tls:
            await self.push(TLS_ALREADY_ACTIVE)
            return
        if arg or not self.tls_context:
            await super().smtp_STARTTLS(arg)
            return
        # aiosmtpd's STARTTLS, with the relay's handshake timeout (and not the idle one).
        await self.push("220 2.0.0 Ready to start TLS")
        waiter = self.loop.create_future()
        self._tls_protocol = sslproto.SSLProtocol(
            self.loop, self, self.tls_context, waiter, server_side=True,
            ssl_handshake_timeout=self.relay.config.tls_handshake_timeout)  # type: ignore[arg-type]
        self._original_transport = self.transport
        assert self._original_transport is not None and self._timeout_handle is not None
        self._timeout_handle.cancel()  # connection_made() starts it again after the handshake
        self._original_transport.set_protocol(self._tls_protocol)
        self.transport = self._tls_protocol._app_transport
        self._tls_protocol.connection_made(self._original_transport)
        try:
            await waiter
        except asyncio.CancelledError:
            raise
        except Exception as error:
            raise TLSSetupException() from error

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
        if arg and arg[:5].upper() == "FROM:":
            path = arg[5:].strip()
            if _unterminated(path):
                await self.push(UNTERMINATED_SENDER)
                return
            assert self.session is not None
            if self.session.extended_smtp and "AUTH=" in path.upper():
                address, params = self._getaddr(path)
                if address is not None and params:
                    kept = _without_auth_parameter(params)
                    if kept is None:
                        await self.push(BAD_AUTH_PARAMETER)
                        return
                    # The parser gives the parameters as the end of the path.
                    arg = f"FROM:{path[: len(path) - len(params)]} {kept}"
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

    async def smtp_RCPT(self, arg: str | None) -> None:
        if arg and arg[:3].upper() == "TO:" and _unterminated(arg[3:].strip()):
            await self.push(UNTERMINATED_RECIPIENT)
            return
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        self._last_received = self.loop.time()
        self._in_data = True
        try:
            await super().smtp_DATA(arg)
        finally:
            self._in_data = False

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
            if not status:
                return  # handle_exception(): nothing to say to a client that is gone
            status = status.encode("utf-8", "replace")
        rewritten = _REWRITES.get(status)
        if rewritten is not None:
            status, kind, reason = rewritten
            envelope = self.envelope
            self.record_event(kind, status.decode(), reason=reason,
                              address=(envelope.mail_from or "") if envelope else "")
        elif status == self._greeting or (self._in_helo and status[:3] == b"250"):
            pass  # RFC 2034: no enhanced code in the greeting and the HELO/EHLO reply
        else:
            status = with_enhanced_code(status)
        if self._in_helo and status == b"250 HELP":
            # Extensions aiosmtpd does not list although the relay supports them.
            await super().push(b"250-PIPELINING")
            await super().push(b"250-ENHANCEDSTATUSCODES")
        await super().push(status)


class ImplicitTLS(asyncio.Protocol):
    """Accepts a connection on an implicit-TLS port: counts it against its client's limit
    at once (before any handshake), runs the handshake under RELAY_TLS_HANDSHAKE_TIMEOUT,
    then hands the connection to its RelaySMTP."""

    def __init__(self, smtp: RelaySMTP, context: ssl.SSLContext) -> None:
        self.smtp = smtp
        self.context = context

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        smtp = self.smtp
        peer = transport.get_extra_info("peername")
        smtp.client_ip = peer[0] if peer else None
        if smtp.relay.connection_opened(smtp) is not None:
            # Over the limit or cooling off (recorded): without TLS there is no way to
            # say so, the connection is closed.
            transport.abort()
            return
        smtp._counted = True
        smtp._raw_transport = transport
        waiter: asyncio.Future[None] = smtp.loop.create_future()
        waiter.add_done_callback(self._handshake_done)
        tls = sslproto.SSLProtocol(
            smtp.loop, smtp, self.context, waiter, server_side=True,
            ssl_handshake_timeout=smtp.relay.config.tls_handshake_timeout)  # type: ignore[arg-type]
        transport.set_protocol(tls)
        tls.connection_made(transport)

    def _handshake_done(self, waiter: asyncio.Future[None]) -> None:
        smtp = self.smtp
        smtp._raw_transport = None
        error = None if waiter.cancelled() else waiter.exception()
        if error is not None:
            log.info("%s: TLS handshake failed (%s)", smtp.client_ip, error)
        if error is not None or smtp.transport is None:
            # RelaySMTP never saw the connection, so its connection_lost() will not run.
            smtp.release()


def _unterminated(path: str) -> bool:
    """Whether a MAIL/RCPT path opens with "<" but has no closing ">" (the address
    parser takes it without one)."""
    if not path.startswith("<") or _SIMPLE_PATH.match(path):
        return False
    if ">" not in path:
        return True
    try:
        token, _ = get_angle_addr(path)
    except (HeaderParseError, IndexError):
        return False  # malformed in another way: aiosmtpd refuses it
    return any("missing trailing '>'" in str(d) for d in token.all_defects)


def _without_auth_parameter(arg: str) -> str | None:
    """`arg` without its AUTH= parameter (RFC 4954 section 5), or None if that is not
    "<>" or xtext. The relay knows who logged in: a claimed submitter changes nothing
    and is not passed on."""
    found = list(_AUTH_PARAM.finditer(arg))
    if not found:
        return arg
    if len(found) > 1:
        return None
    match = found[0]
    value = match.group(1)
    if value != "<>" and not _XTEXT.match(value):
        return None
    return arg[: match.start()] + arg[match.end():]


@functools.cache
def _smtp_method_names() -> list[str]:
    return [n for n in dir(RelaySMTP) if n.startswith(("smtp_", "auth_"))]
