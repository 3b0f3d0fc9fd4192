"""The relay process's answers to "is this recipient on the account's suppression list?".

Every RCPT TO asks it; without this cache each asked the database. Each account's list
has a version (`relay.models.SuppressionListVersion`), bumped in the transaction of
every change to the list (`relay.suppressions`: console, command line, import, the
delivery worker's automatic entries). A lookup reads the version in the same statement
as the entry, and the answers are kept under that version. The limit sync (about once
a second, `relay.smtp.limit_sync`) reads the versions of the accounts held here: an
account whose list changed loses all its answers.

An answer is used only while its account's version was confirmed (by the sync or by a
lookup) by a read that started less than `max_age` seconds ago (two sync intervals);
otherwise the database is asked again. So a change made anywhere applies at RCPT TO on
every relay process within `max_age` of its commit (2 s by default), and at once for an
address the process has not looked up since. If the sync cannot reach the database,
the answers age out and every RCPT asks the database, as without the cache.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.utils import timezone

from relay.suppressions import Entry, Found

# Answers kept at most (all accounts together); past that the cache starts over.
MAX_ANSWERS = 100_000


class Miss:
    pass


MISS = Miss()


@dataclass
class _Account:
    version: int
    # When the read that gave `version` started, and the latest read that confirmed it.
    read_at: float
    confirmed: float
    answers: dict[str, Entry | None] = field(default_factory=dict)


class SuppressionCache:
    def __init__(self, max_age: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.clock = clock
        self._accounts: dict[int, _Account] = {}
        self._size = 0
        self.hits = 0  # answers given without the database (tests, metrics)

    def answer(self, account_id: int, key: str) -> Entry | None | Miss:
        """The entry of the normalised address `key` (None: not suppressed), or MISS
        when the database must be asked."""
        account = self._accounts.get(account_id)
        if account is None or self.clock() - account.confirmed >= self.max_age:
            return MISS
        entry = account.answers.get(key, MISS)
        if isinstance(entry, Entry) and entry.expires is not None \
                and entry.expires <= timezone.now():
            return MISS  # ended since: ask again
        if entry is not MISS:
            self.hits += 1
        return entry

    def keep(self, account_id: int, key: str, found: Found, started: float) -> None:
        """Keep a lookup's answer; `started`: this clock when the lookup was sent."""
        account = self._accounts.get(account_id)
        if account is not None and found.version < account.version:
            return  # read before a change this cache already knows of
        if account is None or found.version > account.version:
            self._drop(account_id)
            account = _Account(found.version, started, started)
            self._accounts[account_id] = account
        else:
            account.confirmed = max(account.confirmed, started)
        if self._size >= MAX_ANSWERS:
            self._accounts, self._size = {account_id: account}, len(account.answers)
        if key not in account.answers:
            self._size += 1
        account.answers[key] = found.entry

    def accounts(self) -> list[int]:
        """The accounts whose versions the next sync should read."""
        return list(self._accounts)

    def confirm(self, versions: dict[int, int], started: float) -> None:
        """Apply the versions a sync read (an account without a row: 0); `started`: this
        clock when the sync's read was sent."""
        for account_id, account in list(self._accounts.items()):
            version = versions.get(account_id, 0)
            if version == account.version:
                account.confirmed = max(account.confirmed, started)
            elif version > account.version or started > account.read_at:
                # Changed (or the account is gone) since the answers were read.
                self._drop(account_id)

    def _drop(self, account_id: int) -> None:
        account = self._accounts.pop(account_id, None)
        if account is not None:
            self._size -= len(account.answers)
