"""What the relay process asks of the database on its hot path, behind one interface.

`RelayStore` is the relay's per-message database work: a login (one query, none when
`relay.smtp.login_cache` holds a confirmed earlier success with the same credentials, and
now and then the hourly count; the log-in time is written by the limit sync), the group commit's
write, a user's messages of the last hour, and the periodic version check of logged-in users. Two
implementations, chosen once when the server starts (`relay.smtp.server.open_store()`):

- `ThreadStore`: the plain synchronous functions (`relay.smtp.login.log_in`,
  `relay.smtp.accept.store_messages`, …) on the relay's database threads, for every
  database Django supports;
- `relay.smtp.store_pg.PostgresStore`: on PostgreSQL, the login query and the store on
  the event loop over psycopg's async connections (no thread hand-off per message); the
  rest on the same threads.

Both give the same answers and raise what the database raises (the caller answers
451, never 250): `tests/relay/smtp/test_store_contract.py` runs one set of tests
against each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from relay import suppressions
from relay.smtp import login, revocation
from relay.smtp.accept import Submission, store_messages
from relay.smtp.limit_sync import SYNC_SECONDS
from relay.smtp.limits import messages_last_hour
from relay.smtp.login import LastLogin, LoginOutcome, defer_login, judge_login, write_login
from relay.smtp.login_cache import LoginCache
from relay.smtp.suppression_cache import Miss, SuppressionCache

if TYPE_CHECKING:
    from relay.smtp.revocation import Held, UserNow
    from smtpplus.dbthreads import DbThreads

# Whether a login should count the user's messages of the last hour (user id → yes/no):
# the relay asks its in-memory hourly limits whether their count is stale.
WantsHourly = Callable[[int], bool]


class StoreUnusable(RuntimeError):
    """The relay's store cannot work with the database as configured; the message names
    the setting to change."""


class RelayStore(Protocol):
    """The relay process's database, as its handler and group commit see it."""

    async def log_in(self, username: str, password: str, client_ip: str | None) -> LoginOutcome:
        """Check the credentials; on success the sender policy, and the hourly count when
        the user has a limit and the relay asked for it. A success is kept in
        `login_cache` (when on) and a later login with the same credentials is judged from
        it without the query while the version check confirms it. Keeps the log-in time and IP,
        at most every `login.LAST_LOGIN_WRITE_SECONDS` per user, for `take_logins()`."""
        ...

    # This process's successful logins (`relay.smtp.login_cache`); None: turned off.
    login_cache: LoginCache | None
    # Login queries run (tests and benchmarks count them).
    login_queries: int

    def take_logins(self) -> list[LastLogin]:
        """The log-in times and IPs kept since the last call (the limit sync writes
        them, `relay.smtp.shared`); the latest per user."""
        ...

    def give_back_logins(self, logins: list[LastLogin]) -> None:
        """Logins `take_logins()` gave that could not be written (a failed sync)."""
        ...

    async def store_messages(self, subs: list[Submission]) -> list[str]:
        """Commit the messages and their recipients in one transaction (all or nothing);
        their queue ids, in order."""
        ...

    async def messages_last_hour(self, user_id: int) -> int:
        """The user's messages of the last hour, as the database counts them."""
        ...

    async def suppressed(self, account_id: int, address: str) -> str | None:
        """The RCPT TO refusal if the account's suppression list holds `address` (the
        answer may come from `suppression_cache`, which the limit sync keeps current)."""
        ...

    @property
    def suppression_cache(self) -> SuppressionCache:
        """This process's answers for the suppression lists."""
        ...

    async def read_changes(self, held: dict[int, Held]) -> dict[int, UserNow]:
        """The logged-in users that changed since their sessions logged in
        (`relay.smtp.revocation.read_changes`)."""
        ...

    async def check(self) -> None:
        """Before the relay listens: raise `StoreUnusable` (its message says what to
        change) if the store cannot work with the database as configured."""
        ...

    async def close(self) -> None:
        """Let go of the store's own connections (the database threads are the
        server's)."""
        ...


class ThreadStore:
    """`RelayStore` as synchronous jobs on the relay's database threads."""

    def __init__(self, threads: DbThreads, hostname: str, wants_hourly: WantsHourly,
                 suppression_max_age: float = 2 * SYNC_SECONDS,
                 login_cache: LoginCache | None = None) -> None:
        self.threads = threads
        self.login_cache = login_cache
        self.login_queries = 0
        self.hostname = hostname
        self.wants_hourly = wants_hourly
        self._suppressions = SuppressionCache(suppression_max_age)
        # When each user's last login was written (user id → monotonic time), and the
        # log-in times and IPs the next limit sync writes.
        self.logins_written: dict[int, float] = {}
        self._last_logins: dict[int, LastLogin] = {}

    async def log_in(self, username: str, password: str, client_ip: str | None) -> LoginOutcome:
        cache = self.login_cache
        if cache is not None:
            kept = cache.get(username, password)
            if kept is not None:
                outcome = await self._decide(kept, password, client_ip)
                if outcome.result.ok:
                    return outcome
        started = cache.clock() if cache is not None else 0.0
        self.login_queries += 1
        row = await self._login_row(username)
        outcome = await self._decide(row, password, client_ip)
        user = outcome.result.smtp_user
        if cache is not None and outcome.result.ok and row is not None and user is not None:
            cache.put(username, password, row, user.pk, user.account_id, user.version,
                      started)
        return outcome

    async def _login_row(self, username: str) -> Sequence[Any] | None:
        """The login query's row for `username` (None: no such user)."""
        return await self.threads.run(login.login_row, username)

    async def _decide(self, row: Sequence[Any] | None, password: str,
                      client_ip: str | None) -> LoginOutcome:
        """`judge_login()` on the row; the log-in time kept for the limit sync, the
        hourly count read when due."""
        outcome, todo = judge_login(row, password, client_ip, self.wants_hourly,
                                    self.logins_written)
        if todo is not None:
            todo = defer_login(outcome, todo)
            self._keep_login(outcome)
        if todo is not None:
            outcome.hourly_count = await self.threads.run(write_login, todo)
        return outcome

    def _keep_login(self, outcome: LoginOutcome) -> None:
        if outcome.last_login is not None:
            self._last_logins[outcome.last_login.user_id] = outcome.last_login

    def take_logins(self) -> list[LastLogin]:
        logins, self._last_logins = self._last_logins, {}
        return list(logins.values())

    def give_back_logins(self, logins: list[LastLogin]) -> None:
        for last in logins:
            self._last_logins.setdefault(last.user_id, last)

    async def store_messages(self, subs: list[Submission]) -> list[str]:
        return await self.threads.run(store_messages, subs, self.hostname)

    async def messages_last_hour(self, user_id: int) -> int:
        return await self.threads.run(messages_last_hour, user_id)

    @property
    def suppression_cache(self) -> SuppressionCache:
        return self._suppressions

    async def suppressed(self, account_id: int, address: str) -> str | None:
        key = suppressions.normalise(address)
        if key is None:
            return None
        cache = self._suppressions
        entry = cache.answer(account_id, key)
        if isinstance(entry, Miss):
            started = cache.clock()
            found = await self._lookup(account_id, key)
            cache.keep(account_id, key, found, started)
            entry = found.entry
        return suppressions.refusal(entry, address)

    async def _lookup(self, account_id: int, key: str) -> suppressions.Found:
        return await self.threads.run(suppressions.lookup, account_id, key)

    async def read_changes(self, held: dict[int, Held]) -> dict[int, UserNow]:
        return await self.threads.run(revocation.read_changes, held)

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None
