"""A real SMTP upstream on loopback that tests can program.

`FakeUpstream` runs aiosmtpd on its own event loop in a thread, on a free port of
127.0.0.1. Tests tell it how to answer:

    upstream.replies["bob@example.net"] = "550 5.1.1 No such user"   # every time
    upstream.replies["eve@example.net"] = ["451 4.3.0 Busy", "250 2.1.5 Ok"]  # in turn
    upstream.hang_up_at = "rcpt"     # drop the connection without a reply ("mail", "data")
    upstream.hang_at = "data"        # never answer DATA until `release()` (or `stop()`)
    upstream.data_delay = 0.3        # slow: take each message at once, answer DATA later
    upstream.smtputf8 = False        # do not advertise SMTPUTF8 (and refuse 8-bit headers)
    upstream.dsn = True              # offer DSN (RFC 3461); its parameters land in
                                     # upstream.dsn_params ("MAIL" / the address → words)
    upstream.auth = ("user", "pw")   # require AUTH PLAIN/LOGIN with these credentials
    upstream.tls = ssl_context       # offer STARTTLS with this server context…
    upstream.implicit_tls = True     # …or speak TLS from the start (smtps); then up() again
    upstream.down(); upstream.up()   # refuse connections (and drop open ones), then listen again

and records what it got in `upstream.received` (one `Received` per accepted message)
and how many connections it saw in `upstream.connections`; `upstream.copies()` counts
the copies each recipient got (a client that hangs up while a slow DATA reply is pending
leaves a copy behind, as with a real upstream that has queued the message). `upstream.url()` is a
`RELAY_UPSTREAM` value pointing at it.

The `upstream` fixture is imported by tests/conftest.py so every test folder sees it.
`database_url_for_subprocess()` gives a DATABASE_URL for the current test database, so that
subprocesses (`manage.py deliver`, `runrelay`) share the test's data.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

HOST = "127.0.0.1"
# How the upstream holds MAIL FROM:<> (aiosmtpd reads an empty sender as none); a
# `Received` shows it as "" again.
NULL_SENDER = "null-sender@fake-upstream.invalid"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    mail_options: list[str]
    connection: int  # 1 for the first connection the upstream accepted, 2 …
    tls: bool = False  # the message came over TLS

    @property
    def header_bytes(self) -> bytes:
        head, _, _ = self.data.partition(b"\r\n\r\n")
        return head


class _Server(SMTP):
    def __init__(self, upstream: FakeUpstream, **kwargs: Any) -> None:
        super().__init__(upstream, **kwargs)
        self.upstream = upstream
        self.number = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        with self.upstream._lock:
            self.upstream.connections += 1
            self.number = self.upstream.connections
        self.upstream._open.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.upstream._open.discard(self)
        super().connection_lost(exc)

    async def push(self, status: bytes | str) -> None:
        if self.upstream.dsn and status in ("250 HELP", b"250 HELP"):
            await super().push("250-DSN")
        await super().push(status)

    def _take_dsn(self, arg: str | None, keyword: str) -> str | None:
        """`arg` without its DSN parameters (recorded), when the upstream offers DSN."""
        if not self.upstream.dsn or not arg or ">" not in arg:
            return arg
        path, _, params = arg.partition(">")
        words = params.split()
        dsn = [w for w in words if w.split("=", 1)[0].upper() in ("RET", "ENVID", "NOTIFY", "ORCPT")]
        key = "MAIL" if keyword == "MAIL" else path.partition("<")[2].lower()
        self.upstream.dsn_params[key] = dsn
        return " ".join([path + ">", *[w for w in words if w not in dsn]])

    async def smtp_MAIL(self, arg: str | None) -> None:
        arg = self._take_dsn(arg, "MAIL")
        if arg and arg[5:].strip().startswith("<>"):
            # aiosmtpd takes an empty sender for "no MAIL yet"; a real MTA accepts <>.
            arg = "FROM:<" + NULL_SENDER + ">" + arg[5:].strip()[2:]
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        await super().smtp_RCPT(self._take_dsn(arg, "RCPT"))


class FakeUpstream:
    def __init__(self) -> None:
        self.host = HOST
        self.port = 0
        self.smtputf8 = True
        self.dsn = False
        self.dsn_params: dict[str, list[str]] = {}
        self.auth: tuple[str, str] | None = None
        self.tls: ssl.SSLContext | None = None
        self.implicit_tls = False
        self.replies: dict[str, Any] = {}
        self.default_reply = "250 2.1.5 Ok"
        self.data_reply = "250 2.0.0 Ok: queued"
        self.hang_up_at: str | None = None
        self.hang_at: str | None = None
        self.data_delay = 0.0
        self.received: list[Received] = []
        self.data_started: list[tuple[str, list[str]]] = []  # DATA seen, answered or not
        self.connections = 0
        self._lock = threading.Lock()
        self._open: set[_Server] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.AbstractServer | None = None
        self._release: asyncio.Event | None = None

    # --- lifecycle ----------------------------------------------------------------------
    def start(self) -> FakeUpstream:
        self._thread.start()
        self._call(self._make_release())
        self.up()
        return self

    def stop(self) -> None:
        self.release()
        self.down()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def up(self) -> None:
        """Listen (again, on the same port once one was chosen)."""
        self._server = self._call(self._listen())
        self.port = self._server.sockets[0].getsockname()[1]

    def down(self) -> None:
        """Stop listening and drop every open connection: clients see it as down."""
        if self._server is not None:
            self._call(self._close())
            self._server = None

    def release(self) -> None:
        """Let a DATA held by `hang_at = "data"` be answered."""
        if self._release is not None:
            self._loop.call_soon_threadsafe(self._release.set)

    def url(self, scheme: str = "smtp", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        creds = f"{self.auth[0]}:{self.auth[1]}@" if self.auth else ""
        return f"{scheme}://{creds}{self.host}:{self.port}" + (f"?{query}" if query else "")

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the upstream did not see what the test waited for")
            time.sleep(0.02)

    def recipients_received(self) -> list[str]:
        return [r for m in list(self.received) for r in m.rcpt_tos]

    def copies(self) -> Counter[str]:
        """How many copies of a message each recipient received."""
        return Counter(self.recipients_received())

    # --- event-loop side ----------------------------------------------------------------
    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _make_release(self) -> None:
        self._release = asyncio.Event()

    async def _listen(self) -> asyncio.AbstractServer:
        return await self._loop.create_server(
            self._protocol,
            HOST,
            self.port,
            reuse_address=True,
            ssl=self.tls if self.implicit_tls else None,
        )

    async def _close(self) -> None:
        assert self._server is not None
        self._server.close()
        for conn in list(self._open):
            if conn.transport is not None:
                conn.transport.close()
        self._open.clear()
        await self._server.wait_closed()

    def _protocol(self) -> _Server:
        kwargs: dict[str, Any] = {
            "hostname": "upstream.test",
            "ident": "fake upstream",
            "enable_SMTPUTF8": self.smtputf8,
            "decode_data": False,
        }
        if self.auth is not None:
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        if self.tls is not None and not self.implicit_tls:
            kwargs["tls_context"] = self.tls
        return _Server(self, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and self.auth is not None
            and (data.login.decode(), data.password.decode()) == self.auth
        )
        return AuthResult(success=ok, handled=False)

    def _next_reply(self, address: str) -> str:
        reply = self.replies.get(address.lower(), self.default_reply)
        if isinstance(reply, list):
            return reply.pop(0) if len(reply) > 1 else reply[0]
        return str(reply)

    @staticmethod
    def _hang_up(server: SMTP) -> str:
        assert server.transport is not None
        server.transport.close()
        return "421 4.3.0 gone"  # never reaches the client: the transport is closed

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.hang_up_at == "mail":
            return self._hang_up(server)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.hang_up_at == "rcpt":
            return self._hang_up(server)
        reply = self._next_reply(address)
        if reply.startswith("2"):
            envelope.rcpt_tos.append(address)
        return reply

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        self.data_started.append((str(envelope.mail_from), list(envelope.rcpt_tos)))
        if self.hang_up_at == "data":
            return self._hang_up(server)
        if self.hang_at == "data":
            assert self._release is not None
            await self._release.wait()
        head = data.partition(b"\r\n\r\n")[0]
        if not self.smtputf8 and not head.isascii():
            # What a strict upstream without SMTPUTF8 does with raw UTF-8 headers.
            return "554 5.6.7 Non-ASCII header requires SMTPUTF8"
        if not self.data_reply.startswith("2"):
            return self.data_reply
        number = server.number if isinstance(server, _Server) else 0
        self.received.append(
            Received(
                "" if envelope.mail_from == NULL_SENDER else str(envelope.mail_from),
                list(envelope.rcpt_tos),
                data,
                list(envelope.mail_options),
                number,
                tls=self.implicit_tls or session.ssl is not None,
            )
        )
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        return self.data_reply


@pytest.fixture
def upstream() -> Iterator[FakeUpstream]:
    server = FakeUpstream().start()
    try:
        yield server
    finally:
        server.stop()


def database_url_for_subprocess() -> str:
    """DATABASE_URL of the database the current test uses (for subprocesses)."""
    from django.db import connection

    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    user = quote(s.get("USER") or "", safe="")
    password = f":{quote(s['PASSWORD'], safe='')}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}{s.get('HOST') or 'localhost'}{port}/{s['NAME']}"


def queue_message(
    smtp_user: Any,
    recipients: list[str],
    *,
    sender: str = "shop@acme.test",
    subject: str = "Your order",
    raw: bytes | None = None,
    created: Any = None,
    **fields: Any,
) -> Any:
    """A message as the relay stores it after accepting it: queued recipients, due now."""
    import uuid

    from django.utils import timezone

    from relay.models import Message, Recipient

    created = created or timezone.now()
    if raw is None:
        raw = (
            f"Received: from client (127.0.0.1) by relay.test\r\nFrom: {sender}\r\n"
            f"To: {', '.join(recipients)}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@acme.test>\r\n\r\nHello.\r\n"
        ).encode()
    message = Message.objects.create(
        account=smtp_user.account,
        smtp_user=smtp_user,
        queue_id=uuid.uuid4().hex[:12].upper(),
        created=created,
        envelope_from=sender,
        header_from=sender,
        subject=subject,
        size=len(raw),
        raw=raw,
        **fields,
    )
    Recipient.objects.bulk_create(
        [
            Recipient(
                message=message,
                account=smtp_user.account,
                smtp_user=smtp_user,
                address=address,
                priority=smtp_user.priority,
                created=created,
                next_attempt_at=created,
            )
            for address in recipients
        ]
    )
    return message
