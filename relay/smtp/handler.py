"""The aiosmtpd handler: the relay decides here, plain functions judge.

Each hook takes a snapshot of the session, asks the pure checks of `relay.smtp.checks`
whether the command may pass, records the event of a refusal and gives the reply (all
texts from `relay.smtp.replies`). Database calls go through the context's `store`
(`relay.smtp.store`, chosen once per process) and its group commit. The handler sees
its relay process only through a `RelayContext`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
from typing import TYPE_CHECKING

from aiosmtpd.smtp import MISSING, AuthResult, Envelope, _Missing

from relay.models import EventKind
from relay.smtp import accept, checks, dsn_envelope, replies, revocation
from relay.smtp.checks import Reject
from relay.smtp.context import RelayContext
from relay.smtp.limits import CooloffOwner
from relay.smtp.session import RelaySession

if TYPE_CHECKING:
    from accounts.models import SmtpUser
    from relay.smtp.protocol import RelaySMTP

log = logging.getLogger("relay.smtp")


class RelayHandler:
    def __init__(self, context: RelayContext) -> None:
        self.context = context

    def __dir__(self) -> list[str]:
        # Scanned by aiosmtpd for handle_*/auth_* on every connection (see RelaySMTP).
        return _HANDLER_NAMES

    # --- helpers ---------------------------------------------------------------------
    async def _hourly_limit_reached(self, session: RelaySession) -> bool:
        """Whether the user has used up its hourly limit. Before saying so, a count older
        than a minute is read again: the hour moves on, and other relay processes'
        messages count too. Only a refusal pays for the query."""
        hourly, user_id = self.context.guard.hourly, session.smtp_user_id or 0
        if not hourly.exceeded(user_id, session.hourly_limit):
            return False
        if hourly.needs_load(user_id):
            try:
                hourly.load(user_id, await self.context.store.messages_last_hour(user_id))
            except Exception:
                log.exception("could not count the last hour's messages of %s", session.username)
                return True
        return hourly.exceeded(user_id, session.hourly_limit)

    @staticmethod
    def _refuse(server: RelaySMTP, reject: Reject) -> str:
        server.record_event(reject.kind, reject.reply, address=reject.address,
                            reason=reject.reason)
        return reject.reply

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session error", exc_info=error)
        return replies.INTERNAL_ERROR

    # --- AUTH -------------------------------------------------------------------------
    async def auth_PLAIN(self, server: RelaySMTP, args: list[str]) -> AuthResult:
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
            await server.push(replies.EMPTY_AUTH_PLAIN)
            return AuthResult(success=False, handled=True)
        parts = blob.split(b"\x00")
        if len(parts) != 3:
            await server.push(replies.UNSPLITTABLE_AUTH_PLAIN)
            return AuthResult(success=False, handled=True)
        authzid, login, password = parts
        if authzid and authzid != login:
            # RFC 4616: acting as another identity is refused, never silently ignored.
            return await self._refuse_login(
                server, "authorization identity differs from the user name", None)
        return await self._log_in(server, login, password)

    async def auth_LOGIN(self, server: RelaySMTP, args: list[str]) -> AuthResult:
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

    async def _log_in(self, server: RelaySMTP, login: bytes, password: bytes) -> AuthResult:
        ctx = self.context
        session = server.relay_session
        username = login.decode("utf-8", "replace").strip()
        session.username_tried = accept.printable(username, 320)
        outcome = await ctx.store.log_in(
            username, password.decode("utf-8", "replace"), server.client_ip)
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
        ctx.session_watch.add(server)
        if outcome.hourly_count is not None:
            ctx.guard.hourly.load(user.pk, outcome.hourly_count)
        ctx.stats.login(server.listener.port, user.pk, tls=server.is_tls)
        return AuthResult(success=True, auth_data=user.username, message=replies.AUTH_OK)

    async def _refuse_login(
        self, server: RelaySMTP, reason: str, user: SmtpUser | None
    ) -> AuthResult:
        server.record_event(
            EventKind.AUTH_FAILED, replies.AUTH_FAILED,
            reason=reason,
            account_id=user.account.pk if user else None,
            smtp_user_id=user.pk if user else None,
        )
        owner = CooloffOwner(server.relay_session.username_tried,
                             user.account.pk if user else None, user.pk if user else None)
        cooloff = self.context.guard.login_failed(server.client_ip, owner)
        if cooloff is not None:
            server.record_event(cooloff.kind, cooloff.reply, reason=cooloff.reason,
                                account_id=owner.account_id, smtp_user_id=owner.smtp_user_id)
            await server.push(cooloff.reply)
            assert server.transport is not None
            server.transport.close()
            return AuthResult(success=False, handled=True)
        return AuthResult(success=False, handled=False)

    # --- envelope ---------------------------------------------------------------------
    async def handle_MAIL(
        self, server: RelaySMTP, session: RelaySession, envelope: Envelope, address: str,
        mail_options: list[str],
    ) -> str:
        snapshot = session.snapshot(envelope)
        reject = checks.mail_from(snapshot, address, "SMTPUTF8" in mail_options)
        if reject is None and await self._hourly_limit_reached(session):
            reject = checks.over_hourly_limit(snapshot, address)
        if reject is None:
            reject = checks.envelope_sender(snapshot, address)
        if reject is not None:
            return self._refuse(server, reject)
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return replies.MAIL_OK

    async def handle_RCPT(
        self, server: RelaySMTP, session: RelaySession, envelope: Envelope, address: str,
        rcpt_options: list[str],
    ) -> str:
        snapshot = session.snapshot(envelope)
        reject = checks.recipient(snapshot, address, self.context.config.max_recipients)
        if reject is None and session.account_id:
            refusal = await self.context.store.suppressed(session.account_id, address)
            if refusal is not None:
                reject = Reject(refusal, EventKind.SUPPRESSED, "on the suppression list",
                                accept.printable(address))
        if reject is not None:
            return self._refuse(server, reject)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return replies.RCPT_OK

    # --- DATA -------------------------------------------------------------------------
    async def handle_DATA(
        self, server: RelaySMTP, session: RelaySession, envelope: Envelope
    ) -> str:
        ctx = self.context
        # No size check here: aiosmtpd refuses a message over data_size_limit
        # (RELAY_MAX_MESSAGE_SIZE) before this hook, and RelaySMTP.push() records it.
        raw: bytes = envelope.original_content or b""
        if session.revoked is not None:  # during the upload
            return revocation.refuse(server)
        assert session.policy is not None and session.smtp_user_id is not None
        snapshot = session.snapshot(envelope)
        headers = checks.message(snapshot, raw)
        if isinstance(headers, Reject):
            return self._refuse(server, headers)
        if await self._hourly_limit_reached(session):
            return self._refuse(server, checks.over_hourly_limit(snapshot, snapshot.mail_from))
        submission = accept.Submission(
            account_id=session.account_id or 0,
            smtp_user_id=session.smtp_user_id,
            username=session.username,
            priority=session.priority,
            envelope_from=snapshot.mail_from,
            recipients=list(envelope.rcpt_tos),
            raw=raw,
            client_ip=server.client_ip,
            client_helo=session.host_name or "",
            port=server.listener.port,
            smtputf8=snapshot.smtputf8,
            tls=server.is_tls,
            headers=headers,
            **dsn_envelope.fields(envelope),
        )
        stored = ctx.commit(submission)
        user_id = session.smtp_user_id
        hourly, stats = ctx.guard.hourly, ctx.stats

        def count(f: asyncio.Future[str]) -> None:
            # Counted when the commit succeeds, even if the client has gone by then.
            if not f.cancelled() and f.exception() is None:
                hourly.add(user_id)
                stats.accepted()

        stored.add_done_callback(count)
        try:
            # A client that disconnects now cancels this hook; the commit goes on.
            queue_id = await asyncio.shield(stored)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("could not store a message from %s", session.username, exc_info=exc)
            server.record_event(EventKind.STORE_FAILED, replies.STORE_FAILED,
                                address=snapshot.mail_from, reason=type(exc).__name__)
            return replies.STORE_FAILED
        return replies.queued_reply(queue_id)


async def _initial_response(server: RelaySMTP, text: str) -> bytes | None:
    """The decoded initial response of AUTH ("=" is an empty one, RFC 4954 section 4), or
    None once the client is told it cannot be decoded."""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text.encode(), validate=True)
    except (binascii.Error, ValueError):
        await server.push(replies.BAD_BASE64)
        return None


_HANDLER_NAMES = [n for n in dir(RelayHandler) if n.startswith(("handle_", "auth_"))]
