"""Successful logins, kept per relay process for as long as the version check confirms them.

A client that opens a connection per message logs in once per message; without this
cache each login waits for the login query. `LoginCache` keeps the login query's row of
a SUCCESSFUL login under (username, HMAC-SHA256 of the password with a key drawn at
random when the process starts): the password itself is never kept. A later login with
the same username and password is decided from that row by the same
`relay.smtp.login.judge_login()`, without a query.

An entry is used only while the once-a-second version check of logged-in users
(`relay.smtp.revocation.SessionWatch`) confirms it: that one query reads the cached
users' `version` with the open sessions' users. A user whose version moved (any audited
change: a password reset, disable, senders, limits), or that is gone (deleted, or its
account), is dropped at once; an entry not confirmed within `max_age` seconds (two
checks) is not used, so a failing check sends every login to the database again. So an
admin's change applies to new logins within `max_age` seconds, as it does to open
sessions: a session opened from a cached entry carries the cached versions, and the
check revokes it like a session opened from the database a moment before the change.

A wrong password makes a key that is not in the cache (its login goes to the database,
as every failed login does) and is never kept. Bounded (`MAX_ENTRIES`, least recently
used out first); an entry not used for `IDLE_SECONDS` is forgotten, so its user is no
longer checked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

MAX_ENTRIES = 10_000
IDLE_SECONDS = 300.0


@dataclass
class Entry:
    row: tuple[Any, ...]
    user_id: int
    username: str
    account_id: int
    version: int
    confirmed: float  # monotonic time of the read that last saw `version`
    used: float


class LoginCache:
    def __init__(self, max_age: float, max_entries: int = MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_age = max_age
        self.max_entries = max_entries
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._entries: OrderedDict[tuple[str, bytes], Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _slot(self, username: str, password: str) -> tuple[str, bytes]:
        name = username.strip().lower()
        digest = hmac.new(self._key, name.encode() + b"\x00" + password.encode(),
                          hashlib.sha256).digest()
        return name, digest

    def get(self, username: str, password: str) -> tuple[Any, ...] | None:
        """The login row kept for these credentials, if confirmed within `max_age`."""
        slot = self._slot(username, password)
        entry = self._entries.get(slot)
        if entry is None:
            return None
        now = self.clock()
        if now - entry.confirmed > self.max_age:
            return None
        entry.used = now
        self._entries.move_to_end(slot)
        return entry.row

    def put(self, username: str, password: str, row: Sequence[Any], user_id: int,
            account_id: int, version: int, read_at: float) -> None:
        """Keep the row of a successful login, read by a query that started at
        `read_at` (monotonic)."""
        slot = self._slot(username, password)
        self._entries[slot] = Entry(tuple(row), user_id, slot[0], account_id, version,
                                    read_at, self.clock())
        self._entries.move_to_end(slot)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def held(self) -> dict[int, tuple[str, int, set[int]]]:
        """The users to check: user id → (username, account id, versions kept).
        Forgets entries idle for `IDLE_SECONDS`."""
        now = self.clock()
        users: dict[int, tuple[str, int, set[int]]] = {}
        for slot, entry in list(self._entries.items()):
            if now - entry.used > IDLE_SECONDS:
                del self._entries[slot]
                continue
            users.setdefault(entry.user_id, (entry.username, entry.account_id, set()))[2].add(
                entry.version)
        return users

    def confirm(self, checked: dict[int, set[int]], changed: set[int], started: float) -> None:
        """After a version check that started at `started`: drop the users that
        changed, confirm the entries whose version it saw unchanged."""
        for slot, entry in list(self._entries.items()):
            if entry.user_id in changed:
                del self._entries[slot]
            elif entry.version in checked.get(entry.user_id, ()):
                entry.confirmed = max(entry.confirmed, started)

    def clear(self) -> None:
        self._entries.clear()
