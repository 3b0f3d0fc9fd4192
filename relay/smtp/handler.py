"""The aiosmtpd handler: a thin async shell over `relay.accept`.

Database calls go through `relay.run_db()` (the relay's own thread pool) or, on
PostgreSQL, `relay.asyncdb` (the login query and the store, on the event loop); the
hooks themselves only check in-memory state and build replies. Reply texts follow the
relay contract in DESIGN.md.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, Session, _Missing

from accounts.senders import SenderPolicy, split_address
from relay.models import COOLOFF_STARTED, EventKind
from relay.smtp import accept, revocation
from relay.smtp.headerblock import Unreadable
from relay.smtp.limits import CooloffOwner, messages_last_hour
from relay.smtp.login import log_in

if TYPE_CHECKING:
    from relay.smtp.server import RelayServer

log = logging.getLogger("relay.smtp")

AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
TLS_REQUIRED = "538 5.7.11 Encryption required for requested authentication mechanism"
SIZE_EXCEEDED = "552 5.3.4 Message size exceeds fixed maximum message size"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
RATE_LIMITED = "451 4.7.1 Sending rate limit exceeded, try again later"
STORE_FAILED = "451 4.3.0 Could not store the message, try again later"
INTERNAL_ERROR = "451 4.3.0 Internal error, try again later"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections from your address, try again later"
NULL_SENDER = (
    "550 5.7.1 The null sender <> cannot be used to submit mail: "
    "send from an address authorized for your SMTP+ user"
)
WHAT_TO_AUTHORIZE = "authorize the address or its domain for this user in the SMTP+ console"


def cooloff_reply(seconds: float) -> str:
    minutes = max(1, int(seconds + 59) // 60)
    return f"421 4.7.0 Too many failed logins from your address, try again in {minutes} minutes"


def not_authorized_reply(address: str, username: str, header: str = "") -> str:
    where = f" in the {header} header" if header else ""
    return (
        f"550 5.7.1 Sender <{accept.printable(address)}>{where} is not authorized for "
        f"SMTP+ user {username}: {WHAT_TO_AUTHORIZE}"
    )


NO_FROM_HEADER = (
    "550 5.6.0 The message has no From: header: add one with an address authorized for "
    "this SMTP+ user"
)


def unparsable_header_reply(value: str, header: str) -> str:
    # Not "authorize it": no authorization can make an unreadable header pass.
    return (
        f"550 5.6.0 The {header} header {accept.printable(value, 200)!r} does not contain a "
        f"valid email address: use a plain address such as name@your-authorized-domain"
    )


def unreadable_header_reply(problem: Unreadable) -> str:
    """The reply to a header block that cannot be read unambiguously: which header (or
    line) and what is wrong with it."""
    text = accept.printable(problem.text, 120)
    if not problem.header:
        return (
            f"550 5.6.0 The message's header block is malformed: {problem.why}: {text!r}; "
            "end every header line with CRLF and the header block with an empty line"
        )
    return (
        f"550 5.6.0 The {problem.header} header {text!r} cannot be read unambiguously: "
        f"{problem.why}; use plain addresses such as name@your-authorized-domain or "
        f'"Name" <name@your-authorized-domain>'
    )


class RelaySession(Session):
    """aiosmtpd's session plus who logged in (reset by STARTTLS, like the login)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.username_tried = ""
        self.username = ""
        self.smtp_user_id: int | None = None
        self.account_id: int | None = None
        self.priority = 3
        self.hourly_limit: int | None = None
        self.policy: SenderPolicy | None = None
        # The user's versions read at login, and why the session may not go on (both
        # kept by relay.revocation).
        self.version = 0
        self.password_version = 0
        self.revoked: revocation.Revocation | None = None

    # aiosmtpd sets login_data on every successful AUTH and its own property logs a
    # deprecation warning each time (a log record per login): a plain attribute instead.
    @property
    def login_data(self) -> Any:
        return self._login_data

    @login_data.setter
    def login_data(self, value: Any) -> None:
        self._login_data = value


class RelayHandler:
    def __init__(self, relay: RelayServer) -> None:
        self.relay = relay

    def __dir__(self) -> list[str]:
        # Scanned by aiosmtpd for handle_*/auth_* on every connection (see RelaySMTP).
        return _HANDLER_NAMES

    # --- helpers ---------------------------------------------------------------------
    async def _hourly_limit_reached(self, session: RelaySession) -> bool:
        """Whether the user has used up its hourly limit. Before saying so, a count older
        than a minute is read again: the hour moves on, and other relay processes'
        messages count too. Only a refusal pays for the query."""
        hourly, user_id = self.relay.hourly, session.smtp_user_id or 0
        if not hourly.exceeded(user_id, session.hourly_limit):
            return False
        if hourly.needs_load(user_id):
            try:
                hourly.load(user_id, await self.relay.run_db(messages_last_hour, user_id))
            except Exception:
                log.exception("could not count the last hour's messages of %s", session.username)
                return True
        return hourly.exceeded(user_id, session.hourly_limit)

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error", exc_info=error)
        return INTERNAL_ERROR

    # --- AUTH -------------------------------------------------------------------------
    async def auth_PLAIN(self, server: SMTP, args: list[str]) -> AuthResult:
        blob: bytes | _Missing | None
        if len(args) == 1:
            blob = await server.challenge_auth("")
            if blob is MISSING:
                return AuthResult(success=False, handled=True)  # challenge_auth replied
        else:
            blob = await _initial_response(server, args[1])
            if blob is None:
                return AuthResult(success=False, handled=True)
        assert isinstance(blob, bytes)
        if not blob:
            await server.push("501 5.5.2 Empty AUTH PLAIN response: send the user name and "
                              "the password")
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push("501 5.5.2 Cannot split the AUTH PLAIN value")
            return AuthResult(success=False, handled=True)
        authzid, login, password = parts
        if authzid and authzid != login:
            # RFC 4616: acting as another identity is refused, never silently ignored.
            return await self._refuse_login(
                server, "authorization identity differs from the user name", None)
        return await self._log_in(server, login, password)

    async def auth_LOGIN(self, server: SMTP, args: list[str]) -> AuthResult:
        login: bytes | _Missing | None
        if len(args) == 1:
            login = await server.challenge_auth("Username:")
            if login is MISSING:
                return AuthResult(success=False, handled=True)
        else:
            login = await _initial_response(server, args[1])
            if login is None:
                return AuthResult(success=False, handled=True)
        password = await server.challenge_auth("Password:")
        if password is MISSING:
            return AuthResult(success=False, handled=True)
        assert isinstance(login, bytes) and isinstance(password, bytes)
        return await self._log_in(server, login, password)

    async def _log_in(self, server: Any, login: bytes, password: bytes) -> AuthResult:
        relay = self.relay
        session: RelaySession = server.session
        username = login.decode("utf-8", "replace").strip()
        session.username_tried = accept.printable(username, 320)
        args = (username, password.decode("utf-8", "replace"), server.client_ip,
                relay.hourly.needs_load, relay.logins_written)
        if relay.asyncdb is not None:
            outcome = await relay.asyncdb.log_in(relay.run_db, *args)
        else:
            outcome = await relay.run_db(log_in, *args)
        result = outcome.result
        if not result.ok or result.smtp_user is None or outcome.policy is None:
            return await self._refuse_login(server, result.reason, result.smtp_user)
        user = result.smtp_user
        session.username = user.username
        session.smtp_user_id = user.pk
        session.account_id = user.account.pk  # select_related: no query
        session.priority = user.priority
        session.hourly_limit = user.hourly_limit
        session.policy = outcome.policy
        session.version = user.version
        session.password_version = user.password_version
        relay.session_watch.add(server)
        if outcome.hourly_count is not None:
            relay.hourly.load(user.pk, outcome.hourly_count)
        relay.stats.login(server.listener.port, user.pk)
        return AuthResult(success=True, auth_data=user.username, message=AUTH_OK)

    async def _refuse_login(self, server: Any, reason: str, user: Any) -> AuthResult:
        relay = self.relay
        server.record_event(
            EventKind.AUTH_FAILED, "535 5.7.8 Authentication credentials invalid",
            reason=reason,
            account_id=user.account.pk if user else None,
            smtp_user_id=user.pk if user else None,
        )
        owner = CooloffOwner(server.session.username_tried,
                             user.account.pk if user else None, user.pk if user else None)
        if relay.failures.record_failure(server.client_ip, owner):
            reply = cooloff_reply(relay.failures.cooloff)
            server.record_event(EventKind.AUTH_COOLOFF, reply,
                                reason=f"{COOLOFF_STARTED}: {relay.failures.limit} failed "
                                       f"logins within {int(relay.failures.window)} seconds",
                                account_id=owner.account_id, smtp_user_id=owner.smtp_user_id)
            relay.cooloff_watch.start()
            await server.push(reply)
            server.transport.close()
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False)

    # --- envelope ---------------------------------------------------------------------
    async def handle_MAIL(
        self, server: Any, session: RelaySession, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        if not session.authenticated or session.policy is None:
            server.record_event(EventKind.AUTH_REQUIRED, AUTH_REQUIRED,
                                address=accept.printable(address))
            return AUTH_REQUIRED
        smtputf8 = "SMTPUTF8" in mail_options
        problem = accept.address_problem(address, smtputf8)
        if problem:
            reply = f"553 5.1.7 Sender address rejected: {problem}"
            server.record_event(EventKind.BAD_ADDRESS, reply, address=accept.printable(address),
                                reason=f"sender address: {problem}")
            return reply
        if await self._hourly_limit_reached(session):
            server.record_event(EventKind.RATE_LIMITED, RATE_LIMITED, address=address,
                                reason=f"{session.hourly_limit} messages per hour")
            return RATE_LIMITED
        decision = accept.check_sender(session.policy, address)
        if not decision.allowed:
            reply = not_authorized_reply(address, session.username)
            server.record_event(EventKind.SENDER_REJECTED, reply, address=address,
                                reason=decision.reason)
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: Any, session: RelaySession, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        problem = accept.address_problem(address, bool(envelope.smtp_utf8))
        if problem:
            reply = f"553 5.1.3 Recipient address rejected: {problem}"
            server.record_event(EventKind.BAD_ADDRESS, reply, address=accept.printable(address),
                                reason=f"recipient address: {problem}")
            return reply
        limit = self.relay.config.max_recipients
        if limit and len(envelope.rcpt_tos) >= limit:
            server.record_event(EventKind.TOO_MANY_RECIPIENTS, TOO_MANY_RECIPIENTS,
                                address=envelope.mail_from or "",
                                reason=f"more than {limit} recipients")
            return TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    # --- DATA -------------------------------------------------------------------------
    async def handle_DATA(self, server: Any, session: RelaySession, envelope: Envelope) -> str:
        relay = self.relay
        # No size check here: aiosmtpd refuses a message over data_size_limit
        # (RELAY_MAX_MESSAGE_SIZE) before this hook, and RelaySMTP.push() records it.
        raw: bytes = envelope.original_content or b""
        if session.revoked is not None:  # during the upload
            return revocation.refuse(server)
        assert session.policy is not None and session.smtp_user_id is not None
        headers = accept.parse_headers(raw)
        if headers.unreadable is not None:
            # Refused rather than guessed: another reader could see another author.
            problem = headers.unreadable
            reply = unreadable_header_reply(problem)
            what = f"{problem.header} header" if problem.header else "header block"
            server.record_event(EventKind.FROM_REJECTED, reply,
                                reason=f"{what} cannot be read unambiguously: {problem.why}")
            return reply
        if not headers.from_addresses:
            # RFC 5322 requires a From: header, and without one there is no author
            # address to check against the user's authorized senders.
            server.record_event(EventKind.FROM_REJECTED, NO_FROM_HEADER,
                                address=envelope.mail_from or "", reason="no From: header")
            return NO_FROM_HEADER
        for header, address in headers.authors:
            if split_address(address) is None:
                reply = unparsable_header_reply(address, header)
                server.record_event(EventKind.FROM_REJECTED, reply,
                                    address=accept.printable(address, 998),
                                    reason=f"{header} header is not a valid address")
                return reply
            decision = accept.check_sender(session.policy, address)
            if not decision.allowed:
                reply = not_authorized_reply(address, session.username, header)
                server.record_event(EventKind.FROM_REJECTED, reply,
                                    address=accept.printable(address, 998),
                                    reason=f"{header} {decision.reason}")
                return reply
        if await self._hourly_limit_reached(session):
            server.record_event(EventKind.RATE_LIMITED, RATE_LIMITED,
                                address=envelope.mail_from or "",
                                reason=f"{session.hourly_limit} messages per hour")
            return RATE_LIMITED
        submission = accept.Submission(
            account_id=session.account_id or 0,
            smtp_user_id=session.smtp_user_id,
            username=session.username,
            priority=session.priority,
            envelope_from=envelope.mail_from or "",
            recipients=list(envelope.rcpt_tos),
            raw=raw,
            client_ip=server.client_ip,
            client_helo=session.host_name or "",
            port=server.listener.port,
            smtputf8=bool(envelope.smtp_utf8),
            tls=server.is_tls,
            headers=headers,
        )
        stored = relay.store(submission)
        user_id = session.smtp_user_id
        # Counted when the commit succeeds, even if the client has gone by then.
        stored.add_done_callback(
            lambda f: None if f.cancelled() or f.exception() else relay.hourly.add(user_id)
        )
        try:
            # A client that disconnects now cancels this hook; the commit goes on.
            queue_id = await asyncio.shield(stored)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("could not store a message from %s", session.username, exc_info=exc)
            server.record_event(EventKind.STORE_FAILED, STORE_FAILED,
                                address=envelope.mail_from or "", reason=type(exc).__name__)
            return STORE_FAILED
        return f"250 2.0.0 Ok: queued as {queue_id}"


async def _initial_response(server: SMTP, text: str) -> bytes | None:
    """The decoded initial response of AUTH ("=" is an empty one, RFC 4954 section 4), or
    None once the client is told it cannot be decoded."""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        await server.push("501 5.5.2 Cannot decode base64")
        return None


_HANDLER_NAMES = [n for n in dir(RelayHandler) if n.startswith(("handle_", "auth_"))]
