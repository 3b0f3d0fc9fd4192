"""In-memory limits of one relay process: connections per client IP, the failed-login
cool-off, and the per-user hourly message count.

They live in memory because they are checked on every connection or message and must
cost nothing there. With several relay processes each one counts for itself: the
connection cap and the login cool-off apply per process (an admin lifts a cool-off on
every process: relay/smtp/cooloffs.py), and the hourly count is
re-read from the database at a login and before a message is refused for it, when the
count in memory is older than a minute (`HOURLY_RELOAD_SECONDS`): a refused client sees
the hour move on and the other processes' messages within a minute, even on a
connection it keeps open.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

HOURLY_RELOAD_SECONDS = 60.0


class ConnectionLimiter:
    """Concurrent connections per client IP."""

    def __init__(self, max_per_ip: int) -> None:
        self.max_per_ip = max_per_ip
        self._open: dict[str, int] = {}

    def acquire(self, ip: str) -> bool:
        count = self._open.get(ip, 0)
        if self.max_per_ip and count >= self.max_per_ip:
            return False
        self._open[ip] = count + 1
        return True

    def release(self, ip: str) -> None:
        count = self._open.get(ip, 0) - 1
        if count > 0:
            self._open[ip] = count
        else:
            self._open.pop(ip, None)


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

    def owner(self, ip: str) -> CooloffOwner:
        return self._owners.get(ip) or CooloffOwner()

    def blocked_ips(self) -> list[str]:
        """The IPs in a cool-off now."""
        return [ip for ip in list(self._blocked_until) if self.remaining_cooloff(ip)]

    def release(self, ip: str) -> bool:
        """Lift `ip`'s cool-off (an admin's "unblock now"); True if it had one."""
        self._failures.pop(ip, None)
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
        while times and times[0] < now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            self._blocked_until[ip] = now + self.cooloff
            self._owners[ip] = owner or CooloffOwner()
            self.blocked_since[ip] = time.time()
            times.clear()
            return True
        return False

    def prune(self) -> None:
        """Forget IPs with no recent failures (called with the heartbeat)."""
        now = self.clock()
        for ip in [ip for ip, t in self._failures.items() if not t or t[-1] < now - self.window]:
            del self._failures[ip]
        for ip in [ip for ip, until in self._blocked_until.items() if until <= now]:
            del self._blocked_until[ip]
            self._owners.pop(ip, None)
            self.blocked_since.pop(ip, None)


@dataclass
class _UserWindow:
    db_count: int
    loaded_at: float
    local: deque[float] = field(default_factory=deque)


class HourlyLimits:
    """Messages per SMTP+ user in the last hour, for users with an hourly limit.

    The database count is loaded at AUTH (in the same worker job as the credential
    check) and before a refusal, when it is older than a minute; messages this process
    accepts since then are added in memory. The count is conservative: a message leaves
    the database part only at the next reload.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._users: dict[int, _UserWindow] = {}

    def needs_load(self, user_id: int) -> bool:
        window = self._users.get(user_id)
        return window is None or self.clock() - window.loaded_at > HOURLY_RELOAD_SECONDS

    def load(self, user_id: int, db_count: int) -> None:
        self._users[user_id] = _UserWindow(db_count, self.clock())

    def count(self, user_id: int) -> int:
        window = self._users.get(user_id)
        if window is None:
            return 0
        cutoff = self.clock() - 3600
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
    from django.utils import timezone

    from relay.models import Message

    since = timezone.now() - timedelta(hours=1)
    # The delivery reports SMTP+ writes for the user's mail (null sender) are not its own.
    return (Message.objects.filter(smtp_user_id=smtp_user_id, created__gte=since)
            .exclude(envelope_from="").count())
