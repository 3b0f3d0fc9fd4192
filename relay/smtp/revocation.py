"""Admin changes reach sessions that are already logged in.

A session caches at login what its checks need (sender policy, limits) together with
the SMTP+ user's `version` and `password_version`, read by the login query itself
(`relay.login`). Every audited change of the user bumps `version` in the transaction of
the change, a password reset bumps `password_version` too (`SmtpUser.mark_changed()`);
a deleted user has no row at all.

While a relay process has logged-in sessions, `SessionWatch` reads the versions of their
users every `CHECK_SECONDS`, in ONE primary-key query for all of them (through the
relay's store, on its thread pool whatever the database: no LISTEN/NOTIFY needed). Nothing is read per
message or per command. Only a user whose version moved is read again, with the login
query, and then:

- deleted, disabled, or its password reset since the session logged in: the session is
  revoked. Its next command (or the end of the DATA under way) is answered
  `421 4.7.0 …` saying why, recorded as a `session_revoked` relay event, and the
  connection is closed;
- any other change (senders, priority, hourly limit): the session takes the new sender
  policy and limits, so its next MAIL FROM and DATA are judged by the new rules.

So a change applies to open sessions within `CHECK_SECONDS` plus one query.

The same query confirms the users of this process's cached logins
(`relay.smtp.login_cache`): a changed or deleted user's entries are dropped, the others
are confirmed as of the query's start. The check runs while there are logged-in sessions
or cached logins.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from accounts.models import Account, SmtpUser
from accounts.senders import SenderPolicy
from relay.models import EventKind
from relay.smtp.login import load_login
from relay.smtp.replies import revoked_reply

if TYPE_CHECKING:
    from relay.smtp.protocol import RelaySMTP
    from relay.smtp.server import RelayServer
    from relay.smtp.session import RelaySession

log = logging.getLogger("relay.revocation")

CHECK_SECONDS = 1.0
# Users per version query (SQLite's limit on query parameters is far above).
_CHUNK = 500


@dataclass(frozen=True)
class Revocation:
    """Why a logged-in session may not go on, and what its client is told."""

    reply: str
    reason: str
    # For the relay event: None when the row is gone (a deleted user, or its account).
    account_id: int | None
    smtp_user_id: int | None


@dataclass
class Held:
    """A user with open sessions, as those sessions saw it at login."""

    username: str
    account_id: int | None
    versions: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class UserNow:
    """A user whose version moved, as the database has it now (`user` None: deleted)."""

    user: SmtpUser | None
    policy: SenderPolicy | None = None
    account_exists: bool = True


def read_changes(held: dict[int, Held]) -> dict[int, UserNow]:
    """The users of `held` that changed since their sessions logged in. Synchronous.

    One query reads every version; each changed user costs one login query more."""
    ids = list(held)
    current: dict[int, int] = {}
    for start in range(0, len(ids), _CHUNK):
        rows = (SmtpUser.objects.filter(pk__in=ids[start:start + _CHUNK])
                .order_by().values_list("pk", "version"))
        current.update(rows)
    changed: dict[int, UserNow] = {}
    for user_id, seen in held.items():
        version = current.get(user_id)
        if version is not None and seen.versions == {version}:
            continue
        user, policy = load_login(seen.username) if version is not None else (None, None)
        if user is None or user.pk != user_id:
            account = seen.account_id
            exists = account is not None and Account.objects.filter(pk=account).exists()
            changed[user_id] = UserNow(None, account_exists=exists)
        else:
            changed[user_id] = UserNow(user, policy)
    return changed


def apply_change(session: RelaySession, now: UserNow) -> None:
    """Revoke `session` or give it the user's new policy and limits."""
    user = now.user
    if user is None:
        session.revoked = Revocation(
            revoked_reply(session.username, "was deleted by an admin"),
            "SMTP+ user deleted since login",
            session.account_id if now.account_exists else None, None,
        )
    elif not user.active:
        session.revoked = Revocation(
            revoked_reply(session.username, "was disabled by an admin"),
            "SMTP+ user disabled since login", session.account_id, session.smtp_user_id,
        )
    elif user.password_version != session.password_version:
        session.revoked = Revocation(
            revoked_reply(session.username, "had its password changed: log in again with "
                                            "the new password;"),
            "password reset since login", session.account_id, session.smtp_user_id,
        )
    elif now.policy is not None:
        session.policy = now.policy
        session.priority = user.priority
        session.hourly_limit = user.hourly_limit
        session.version = user.version


def refuse(smtp: RelaySMTP) -> str:
    """Record a revoked session's refusal and close its connection once the reply is
    written (the caller writes it now); give the reply."""
    session = smtp.relay_session
    revoked = session.revoked
    assert revoked is not None
    smtp.record_event(EventKind.SESSION_REVOKED, revoked.reply, reason=revoked.reason,
                      account_id=revoked.account_id, smtp_user_id=revoked.smtp_user_id)
    transport = smtp.transport
    if transport is not None:
        # After the reply's write (queued before the caller's first await); close()
        # sends what is buffered first.
        smtp.loop.call_soon(transport.close)
    return revoked.reply


async def _refuse_command(smtp: RelaySMTP, arg: str | None) -> None:
    await smtp.push(refuse(smtp))


class GuardedCommands(dict[str, Any]):
    """aiosmtpd's table of command methods for one connection: once the session is
    revoked, every command (known or not) gets the 421 and the connection closes."""

    def __init__(self, smtp: RelaySMTP, methods: dict[str, Any]) -> None:
        super().__init__(methods)
        self.smtp = smtp

    def get(self, command: str, default: Any = None) -> Any:
        session = self.smtp.session
        if getattr(session, "revoked", None) is not None:
            return functools.partial(_refuse_command, self.smtp)
        return super().get(command, default)


class SessionWatch:
    """The logged-in connections of one relay process, checked against the database."""

    def __init__(self, relay: RelayServer, seconds: float = CHECK_SECONDS) -> None:
        self.relay = relay
        self.seconds = seconds
        self.connections: dict[RelaySMTP, None] = {}
        self.checks = 0  # version queries run (tests)
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def add(self, smtp: RelaySMTP) -> None:
        """A connection has logged in (again)."""
        self.connections[smtp] = None
        self._start()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = self.relay.loop.create_task(self._run())

    def discard(self, smtp: RelaySMTP) -> None:
        self.connections.pop(smtp, None)

    async def _run(self) -> None:
        # Ends when no session is logged in and no login is cached; the next login starts
        # it again.
        while self.connections or self.relay.store.login_cache:
            await asyncio.sleep(self.seconds)
            await self.check()

    async def check(self) -> None:
        """Read the versions of the logged-in users now and apply what changed."""
        sessions = self._logged_in()
        cache = self.relay.store.login_cache
        cached = cache.held() if cache is not None else {}
        if not sessions and not cached:
            return
        held: dict[int, Held] = {}
        for session in sessions:
            assert session.smtp_user_id is not None
            seen = held.setdefault(session.smtp_user_id,
                                   Held(session.username, session.account_id))
            seen.versions.add(session.version)
        for user_id, (username, account_id, versions) in cached.items():
            held.setdefault(user_id, Held(username, account_id)).versions.update(versions)
        self.checks += 1
        started = cache.clock() if cache is not None else 0.0
        try:
            changed = await self.relay.store.read_changes(held)
        except Exception:
            if not self._failing:
                log.warning("could not check logged-in SMTP+ users for changes; "
                            "retrying every %s s", self.seconds, exc_info=True)
            self._failing = True
            return
        if self._failing:
            log.info("checking logged-in SMTP+ users for changes again")
            self._failing = False
        if cache is not None:
            cache.confirm({u: v for u, (_, _, v) in cached.items()}, set(changed), started)
        for session in sessions:
            now = changed.get(session.smtp_user_id or 0)
            if now is not None and session.revoked is None:
                apply_change(session, now)

    def _logged_in(self) -> list[RelaySession]:
        """Sessions to check; forgets connections that are no longer logged in (a
        STARTTLS resets the session) or already revoked."""
        sessions: list[RelaySession] = []
        for smtp in list(self.connections):
            session = smtp.session
            if getattr(session, "smtp_user_id", None) is None \
                    or getattr(session, "revoked", None) is not None:
                self.discard(smtp)
                continue
            sessions.append(session)  # type: ignore[arg-type]
        return sessions

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
