"""What the relay process asks of the database on its hot path, behind one interface.

`RelayStore` is the relay's per-message database work: a login (one query, and now and
then the last-login write and the hourly count), the group commit's write, a user's
messages of the last hour, and the periodic version check of logged-in users. Two
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

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from relay import suppressions
from relay.smtp import login, revocation
from relay.smtp.accept import Submission, store_messages
from relay.smtp.limits import messages_last_hour
from relay.smtp.login import LoginOutcome

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
        the user has a limit and the relay asked for it. Writes the log-in time and IP at
        most every `login.LAST_LOGIN_WRITE_SECONDS` per user."""
        ...

    async def store_messages(self, subs: list[Submission]) -> list[str]:
        """Commit the messages and their recipients in one transaction (all or nothing);
        their queue ids, in order."""
        ...

    async def messages_last_hour(self, user_id: int) -> int:
        """The user's messages of the last hour, as the database counts them."""
        ...

    async def suppressed(self, account_id: int, address: str) -> str | None:
        """The RCPT TO refusal if the account's suppression list holds `address`."""
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

    def __init__(self, threads: DbThreads, hostname: str, wants_hourly: WantsHourly) -> None:
        self.threads = threads
        self.hostname = hostname
        self.wants_hourly = wants_hourly
        # When each user's last login was written (user id → monotonic time).
        self.logins_written: dict[int, float] = {}

    async def log_in(self, username: str, password: str, client_ip: str | None) -> LoginOutcome:
        return await self.threads.run(login.log_in, username, password, client_ip,
                                      self.wants_hourly, self.logins_written)

    async def store_messages(self, subs: list[Submission]) -> list[str]:
        return await self.threads.run(store_messages, subs, self.hostname)

    async def messages_last_hour(self, user_id: int) -> int:
        return await self.threads.run(messages_last_hour, user_id)

    async def suppressed(self, account_id: int, address: str) -> str | None:
        return await self.threads.run(suppressions.refusal_for, account_id, address)

    async def read_changes(self, held: dict[int, Held]) -> dict[int, UserNow]:
        return await self.threads.run(revocation.read_changes, held)

    async def check(self) -> None:
        return None

    async def close(self) -> None:
        return None
