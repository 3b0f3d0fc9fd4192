"""The limit sync: every relay process shares its limits with the others once a second.

`LimitSync` runs `relay.smtp.shared.sync()` every `RELAY_LIMITS_SYNC_SECONDS` on the
relay's database threads (one job, one transaction) and applies what it reads to the
process's `Guard`: cool-offs started or lifted elsewhere, the other processes' open
connections per IP, fresh hourly counts. Failed logins, connections and messages are
counted in memory on the hot path and only shared here, so the slack of every limit is
what the other processes let through within about one interval:

- cool-off: a client that spreads its guesses over N processes gets at most about one
  interval of guesses on each beyond RELAY_AUTH_FAILURE_LIMIT before all refuse it; an
  admin's "unblock now" applies everywhere within one interval;
- connections per IP: each process may admit what the others admitted in their last
  interval;
- hourly limit: a user may go over by what other processes accept for it in one
  interval (a process sees its own messages at once);
- suppression list: a change applies at RCPT TO within two intervals
  (`relay.smtp.suppression_cache`);
- a login's time and IP reach the user's row within one interval (at most one write a
  minute per user and process, never on the login's path).

If the database cannot be reached the process keeps its own counts and tries again at
the next interval: the limits then hold per process, as they would on one machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.utils import timezone

from relay.models import COOLOFF_STARTED, EventKind
from relay.smtp import shared
from relay.smtp.replies import cooloff_reply
from relay.smtp.shared import CooloffNote, SyncIn, SyncOut

if TYPE_CHECKING:
    from relay.smtp.server import RelayServer

log = logging.getLogger("relay.limit_sync")

SYNC_SECONDS = 1.0
# Old failure counts and cool-offs are deleted this often (by whichever process).
FORGET_SECONDS = 300.0
# Clocks of the console's and the relays' machines may differ by this much.
CLOCK_SLACK = timedelta(seconds=30)


class LimitSync:
    def __init__(self, relay: RelayServer, seconds: float = SYNC_SECONDS) -> None:
        self.relay = relay
        self.seconds = seconds
        self._task: asyncio.Task[None] | None = None
        self._since: datetime | None = None
        self._failing = False
        self._forgot = time.monotonic()
        self._lock = asyncio.Lock()

    def start(self) -> None:
        if self._task is None:
            self._task = self.relay.loop.create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self.run_once()
            await asyncio.sleep(self.seconds)

    async def run_once(self) -> None:
        """One sync (tests call it to share at once)."""
        async with self._lock:
            out = self._collect()
            cache = self.relay.store.suppression_cache
            started = cache.clock()
            try:
                got = await self.relay.run_db(shared.sync, out)
            except Exception:
                self._give_back(out)
                if not self._failing:
                    log.warning("could not share the relay's limits; retrying every %s s",
                                self.seconds, exc_info=True)
                self._failing = True
                return
            self._failing = False
            self._apply(out, got)
            cache.confirm(got.suppression_versions, started)
            if time.monotonic() - self._forgot > FORGET_SECONDS:
                self._forgot = time.monotonic()
                with contextlib.suppress(Exception):
                    await self.relay.run_db(shared.forget_old, timezone.now(),
                                            self.relay.config.auth_failure_window)

    def _collect(self) -> SyncOut:
        cfg, guard = self.relay.config, self.relay.guard
        failures = guard.failures
        started = []
        for ip in failures.started_here:
            left = failures.remaining_cooloff(ip)
            since = failures.blocked_since.get(ip)
            if left and since is not None:
                started.append(CooloffNote(
                    ip, datetime.fromtimestamp(since, UTC),
                    datetime.fromtimestamp(time.time() + left, UTC),
                    failures.owner(ip)))
        failures.started_here = []
        new, failures.unshared = failures.unshared, {}
        return SyncOut(
            node_id=self.relay.node_id,
            failure_limit=cfg.auth_failure_limit,
            failure_window=float(cfg.auth_failure_window),
            cooloff_seconds=float(cfg.auth_cooloff),
            failures=new,
            owners={ip: failures.last_owner[ip] for ip in new if ip in failures.last_owner},
            recent_ips=failures.recent_ips(),
            started=started,
            connections=guard.connections.snapshot(),
            count_connections=bool(cfg.max_connections_per_ip),
            hourly_users=guard.hourly.active_users(),
            suppression_accounts=self.relay.store.suppression_cache.accounts(),
            logins=self.relay.store.take_logins(),
            changes_since=self._since,
        )

    def _give_back(self, out: SyncOut) -> None:
        """A failed sync: what it was to share is shared at the next one."""
        failures = self.relay.guard.failures
        for ip, count in out.failures.items():
            failures.unshared[ip] = failures.unshared.get(ip, 0) + count
        failures.started_here.extend(n.client_ip for n in out.started)
        if out.connections is not None:
            self.relay.guard.connections.dirty = True
        self.relay.store.give_back_logins(out.logins)

    def _apply(self, out: SyncOut, got: SyncIn) -> None:
        guard = self.relay.guard
        failures = guard.failures
        as_of = time.monotonic() - (timezone.now() - got.read_at).total_seconds()
        self._since = got.read_at
        guard.connections.remote = got.remote_connections
        for user_id, count in got.hourly.items():
            guard.hourly.load(user_id, count, as_of)
        for user_id in set(out.hourly_users) - set(got.hourly):
            guard.hourly.load(user_id, 0, as_of)
        for note in got.started:
            self._block(note)
            self.relay.record_event(
                EventKind.AUTH_COOLOFF, client_ip=note.client_ip,
                reply=cooloff_reply(failures.cooloff),
                reason=f"{COOLOFF_STARTED}: {failures.limit} failed logins within "
                       f"{int(failures.window)} seconds on all relay processes",
                username=note.owner.username, account_id=note.owner.account_id,
                smtp_user_id=note.owner.smtp_user_id)
        for note in got.cooloffs:
            self._block(note)

    def _block(self, note: CooloffNote) -> None:
        failures = self.relay.guard.failures
        ip = note.client_ip
        now = timezone.now()
        since = failures.blocked_since.get(ip)
        if note.until <= now:
            # Lifted (or over): unless this process started a newer one since.
            lifted = (note.until + CLOCK_SLACK).timestamp()
            if since is not None and since <= lifted and failures.release(ip):
                log.info("cool-off of %s lifted", ip)
            return
        if since is not None and abs(failures.until_wall(ip) - note.until.timestamp()) < 1:
            return  # the one this process holds already
        failures.block(ip, (note.until - now).total_seconds(), note.owner,
                       note.started.timestamp())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
