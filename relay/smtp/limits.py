"""The limits of the relay: connections per client IP, the failed-login cool-off, and
the per-user hourly message count.

They are checked in memory because they are checked on every connection or message and
must cost nothing there. Every relay process (on any machine, same database) shares
what it counted with the others at its limit sync, about once a second
(relay/smtp/shared.py): its open connections per IP, its new failed logins and the
cool-offs it started, and it reads back the others' connections, the cool-offs started or
lifted anywhere, and the hourly counts of its users from the database. So each limit
holds for the whole deployment, within what the other processes let through in one
sync interval.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from django.db.models import Count
from django.utils import timezone

from relay.models import Message

HOURLY_RELOAD_SECONDS = 60.0


class ConnectionLimiter:
    """Concurrent connections per client IP."""

    def __init__(self, max_per_ip: int) -> None:
        self.max_per_ip = max_per_ip
        self._open: dict[str, int] = {}
        # The other relay processes' open connections per IP, as of the last sync.
        self.remote: dict[str, int] = {}
        # Whether `_open` changed since `snapshot()` last gave it away.
        self.dirty = False

    def acquire(self, ip: str) -> bool:
        count = self._open.get(ip, 0)
        if self.max_per_ip and count + self.remote.get(ip, 0) >= self.max_per_ip:
            return False
        self._open[ip] = count + 1
        self.dirty = True
        return True

    def release(self, ip: str) -> None:
        count = self._open.get(ip, 0) - 1
        if count > 0:
            self._open[ip] = count
        else:
            self._open.pop(ip, None)
        self.dirty = True

    def snapshot(self) -> dict[str, int] | None:
        """This process's open connections per IP if they changed since the last call."""
        if not self.dirty:
            return None
        self.dirty = False
        return dict(self._open)


@dataclass(frozen=True)
class CooloffOwner:
    """Whose username put a client into the cool-off, so that the account sees it."""

    username: str = ""
    account_id: int | None = None
    smtp_user_id: int | None = None


class LoginFailures:
    """`limit` failed logins from one IP within `window` seconds → refused for `cooloff`."""

    def __init__(
        self, limit: int, window: float, cooloff: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self.cooloff = cooloff
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._owners: dict[str, CooloffOwner] = {}
        # Wall-clock start of each cool-off: an admin's release is matched against it.
        self.blocked_since: dict[str, float] = {}
        # For the limit sync: failures per IP not yet shared (and the owner of the last
        # one), and the cool-offs started here, not yet shared.
        self.unshared: dict[str, int] = {}
        self.last_owner: dict[str, CooloffOwner] = {}
        self.started_here: list[str] = []

    def owner(self, ip: str) -> CooloffOwner:
        return self._owners.get(ip) or CooloffOwner()

    def recent_ips(self) -> list[str]:
        """The IPs with failed logins here within the window, not in a cool-off."""
        return [ip for ip in list(self._failures)
                if self._failures[ip] and not self.remaining_cooloff(ip)]

    def until_wall(self, ip: str) -> float:
        """The end of `ip`'s cool-off in epoch seconds (0: none)."""
        left = self.remaining_cooloff(ip)
        return time.time() + left if left else 0.0

    def block(self, ip: str, seconds: float, owner: CooloffOwner, since: float) -> None:
        """Put `ip` into a cool-off of `seconds` more, started at `since` (epoch seconds)
        by another process."""
        self._blocked_until[ip] = self.clock() + seconds
        self._owners[ip] = owner
        self.blocked_since[ip] = since
        self._failures.pop(ip, None)

    def release(self, ip: str) -> bool:
        """Lift `ip`'s cool-off (an admin's "unblock now"); True if it had one."""
        self._failures.pop(ip, None)
        self.unshared.pop(ip, None)
        self._owners.pop(ip, None)
        self.blocked_since.pop(ip, None)
        return self._blocked_until.pop(ip, None) is not None

    def remaining_cooloff(self, ip: str) -> float:
        """Seconds this IP must still wait, 0 when it may log in."""
        until = self._blocked_until.get(ip)
        if until is None:
            return 0.0
        left = until - self.clock()
        if left <= 0:
            del self._blocked_until[ip]
            self._owners.pop(ip, None)
            self.blocked_since.pop(ip, None)
            return 0.0
        return left

    def record_failure(self, ip: str, owner: CooloffOwner | None = None) -> bool:
        """Count a failed login (by `owner`'s username, if known); True if it puts the IP
        into the cool-off."""
        if not self.limit:
            return False
        now = self.clock()
        # Bounded: an IP never holds more than `limit` timestamps.
        times = self._failures.setdefault(ip, deque(maxlen=self.limit))
        times.append(now)
        self.unshared[ip] = self.unshared.get(ip, 0) + 1
        self.last_owner[ip] = owner or CooloffOwner()
        while times and times[0] < now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            self._blocked_until[ip] = now + self.cooloff
            self._owners[ip] = owner or CooloffOwner()
            self.blocked_since[ip] = time.time()
            self.started_here.append(ip)
            times.clear()
            return True
        return False

    def prune(self) -> None:
        """Forget IPs with no recent failures (called with the heartbeat)."""
        now = self.clock()
        for ip in [ip for ip, t in self._failures.items() if not t or t[-1] < now - self.window]:
            del self._failures[ip]
            self.last_owner.pop(ip, None)
        for ip in [ip for ip, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[ip]
            self._owners.pop(ip, None)
            self.blocked_since.pop(ip, None)


@dataclass
class _UserWindow:
    db_count: int
    loaded_at: float
    local: deque[float] = field(default_factory=deque)
    used_at: float = 0.0


class HourlyLimits:
    """Messages per SMTP+ user in the last hour, for users with an hourly limit.

    The database count is loaded at AUTH (in the same worker job as the credential
    check), at every limit sync for the users that sent or logged in recently, and
    before a refusal when it is older than a minute; messages this process accepts since
    then are added in memory. The count is conservative: a message leaves the database
    part only at the next reload.
    """

    # Users the limit sync keeps fresh: those used within this many seconds.
    ACTIVE_SECONDS = 120.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._users: dict[int, _UserWindow] = {}

    def needs_load(self, user_id: int) -> bool:
        window = self._users.get(user_id)
        return window is None or self.clock() - window.loaded_at > HOURLY_RELOAD_SECONDS

    def load(self, user_id: int, db_count: int, as_of: float | None = None) -> None:
        """The database's count, read at `as_of` (this clock; default now): the
        messages added here since then stay counted on top of it."""
        now = self.clock()
        old = self._users.get(user_id)
        # A login (no `as_of`) uses the user; a sync's reload does not.
        used_at = now if as_of is None or old is None else old.used_at
        as_of = now if as_of is None else as_of
        window = _UserWindow(db_count, as_of, used_at=used_at)
        if old is not None:
            window.local = deque(t for t in old.local if t > as_of)
        self._users[user_id] = window

    def active_users(self) -> list[int]:
        """Users to reload at the next sync; forgets those unused for an hour."""
        now = self.clock()
        for user_id in [u for u, w in self._users.items() if now - w.used_at > 3600]:
            del self._users[user_id]
        return [u for u, w in self._users.items() if now - w.used_at <= self.ACTIVE_SECONDS]

    def count(self, user_id: int) -> int:
        window = self._users.get(user_id)
        if window is None:
            return 0
        now = self.clock()
        window.used_at = now
        cutoff = now - 3600
        while window.local and window.local[0] < cutoff:
            window.local.popleft()
        return window.db_count + len(window.local)

    def exceeded(self, user_id: int, limit: int | None) -> bool:
        return bool(limit) and self.count(user_id) >= (limit or 0)

    def add(self, user_id: int) -> None:
        window = self._users.get(user_id)
        if window is not None:
            window.local.append(self.clock())


def messages_last_hour(smtp_user_id: int) -> int:
    """The database side of the hourly count. Synchronous: run it off the event loop."""
    return hourly_counts([smtp_user_id]).get(smtp_user_id, 0)


def hourly_counts(smtp_user_ids: list[int]) -> dict[int, int]:
    """Messages of the last hour per SMTP+ user, whichever relay process (or other
    door) accepted them: one query on the (smtp_user, created) index. Synchronous."""
    if not smtp_user_ids:
        return {}
    since = timezone.now() - timedelta(hours=1)
    # The delivery reports SMTP+ writes for the user's mail (null sender) are not its own.
    rows = (Message.objects.filter(smtp_user_id__in=smtp_user_ids, created__gte=since)
            .exclude(envelope_from="")
            .order_by().values_list("smtp_user_id").annotate(n=Count("pk")))
    return {user_id: n for user_id, n in rows}
