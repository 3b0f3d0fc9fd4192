"""An admin's "unblock now" lifts a failed-login cool-off on every relay process.

The cool-off lives in each process's memory (relay/smtp/limits.py, kept by the
`Guard` of relay/smtp/guard.py, whose `login_failed` starts this watch). The console's
"unblock now" writes a `cooloff_released` relay event for the client's IP
(relay/troubleshooter/lockout.py). While a relay process holds at least one client in a
cool-off, `CooloffWatch` asks the database every `CHECK_SECONDS` — the same pace as the
session check of relay/smtp/revocation.py — whether one of those IPs was released since
its cool-off started: ONE query over the IPs it holds, on the `(client_ip, kind,
last_seen)` index. Nothing is read while no client is cooled off. So an unblock applies
to every process within about a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from relay.models import EventKind, RelayEvent

if TYPE_CHECKING:
    from relay.smtp.server import RelayServer

log = logging.getLogger("relay.cooloffs")

CHECK_SECONDS = 1.0
# Clocks of the console's and the relay's machines may differ by this much.
CLOCK_SLACK = timedelta(seconds=30)


def released_ips(blocked_since: dict[str, float]) -> list[str]:
    """The IPs of `blocked_since` (IP → start of its cool-off, epoch seconds) released by
    an admin since. Synchronous: run it on the relay's thread pool."""
    if not blocked_since:
        return []
    earliest = datetime.fromtimestamp(min(blocked_since.values()), UTC) - CLOCK_SLACK
    rows = (RelayEvent.objects
            .filter(kind=EventKind.COOLOFF_RELEASED, client_ip__in=list(blocked_since),
                    last_seen__gte=earliest)
            .order_by().values_list("client_ip", "last_seen"))
    released: list[str] = []
    for ip, at in rows:
        started = blocked_since.get(ip or "")
        if ip and started is not None and at >= datetime.fromtimestamp(started, UTC) - CLOCK_SLACK:
            released.append(ip)
    return sorted(set(released))


class CooloffWatch:
    """Runs while this process holds a client in a cool-off; lifts released ones."""

    def __init__(self, relay: RelayServer, seconds: float = CHECK_SECONDS) -> None:
        self.relay = relay
        self.seconds = seconds
        self._task: asyncio.Task[None] | None = None
        self._failing = False

    def start(self) -> None:
        """A client was just put into a cool-off."""
        if self._task is None or self._task.done():
            self._task = self.relay.loop.create_task(self._run())

    async def _run(self) -> None:
        failures = self.relay.guard.failures
        while failures.blocked_ips():
            await asyncio.sleep(self.seconds)
            await self.check()

    async def check(self) -> None:
        failures = self.relay.guard.failures
        held = {ip: failures.blocked_since[ip] for ip in failures.blocked_ips()
                if ip in failures.blocked_since}
        try:
            released = await self.relay.run_db(released_ips, held)
        except Exception:
            if not self._failing:
                log.warning("could not check for lifted cool-offs; retrying every %s s",
                            self.seconds, exc_info=True)
            self._failing = True
            return
        self._failing = False
        for ip in released:
            if failures.release(ip):
                log.info("cool-off of %s lifted by an admin", ip)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
