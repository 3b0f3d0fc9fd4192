"""The delivery loop: N asyncio tasks that each deliver one message at a time, until stopped.

The tasks of a worker share what it has claimed: whenever fewer messages than tasks are
waiting, one claim (a short transaction) leases the next batch, so every task has a
message to send even when one batch holds all that is due. Each task repeats one unit —
"take a message, deliver it in one SMTP transaction, commit its outcomes" — and only then
takes the next, so a crash re-sends at most the messages in flight (one per task). While
recipients are held (waiting or in flight, however long a transaction takes: MX hosts are
tried one after another), their leases are renewed. The database work runs on a thread
pool (one connection per thread); the network talk on the event loop, with smarthost
connections shared and reused by all tasks. A message whose delivery raises is recorded
as a temporary failure and the task goes on.

Entry points: `manage.py deliver` (`run_until_signal`), tests (`deliver_due`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections import Counter, deque
from collections.abc import Callable
from typing import Any, NamedTuple

from django.conf import settings
from django.utils import timezone

from relay.delivery import notices, queue
from relay.delivery.deliver import (
    LoadedMessage,
    Outcome,
    OutcomeRecorder,
    claim_batch,
    deliver_message,
)
from relay.delivery.upstreams import Transport, build_transport
from relay.delivery.upstreams.spec import parse_upstream
from smtpplus import metrics
from smtpplus.dbthreads import DbThreads

log = logging.getLogger(__name__)

ONCE_MAX_FAILURES = 3
GATHER_SECONDS = 0.05
# Recipients claimed at a time (a worker claims again when fewer messages than tasks wait).
BATCH_SIZE = 20
# How often a worker writes the delivery status notifications a crash or a delay left owed.
NOTICE_SWEEP_SECONDS = 60.0


class ClaimFailed(Exception):
    """The claim this task waited for failed (and was logged)."""


class Job(NamedTuple):
    """One message to send and its claimed recipients (message None: deleted since)."""

    message: LoadedMessage | None
    recipients: list[queue.Claimed]


def count_deliveries(upstream_kind: str, outcomes: list[Outcome]) -> None:
    """The metrics of one message's recorded outcomes (smtpplus.metrics)."""
    now = timezone.now()
    for o in outcomes:
        if o.raised:
            continue
        outcome = o.reply.outcome
        metrics.DELIVERIES.labels(outcome, upstream_kind).inc()
        metrics.DELIVERY_SECONDS.labels(upstream_kind).observe(o.duration_ms / 1000)
        if outcome == "delivered":
            metrics.DELIVERY_LATENCY.observe((now - o.message_created).total_seconds())


class DeliveryWorker:
    def __init__(
        self,
        concurrency: int | None = None,
        *,
        once: bool = False,
        batch_size: int = BATCH_SIZE,
        upstream: str | None = None,
        poll_interval: float = 1.0,
    ) -> None:
        self.concurrency = max(1, concurrency or settings.DELIVERY_CONCURRENCY)
        self.once = once
        self.batch_size = batch_size
        self.upstream = upstream
        self.poll_interval = poll_interval
        self.owner = queue.new_worker_id()
        self.stats: Counter[str] = Counter()
        self.transport: Transport | None = None
        self.upstream_kind = ""  # "smtp", "mx", …: the metrics' label, set with the transport
        self._db_threads = DbThreads(self.concurrency, "delivery-db")
        self._stopping: asyncio.Event | None = None
        self._recorder = OutcomeRecorder(self.owner, self.db)
        # Claimed and not yet started, and every recipient leased (waiting or in flight).
        self._ready: deque[Job] = deque()
        self._held: set[int] = set()
        self._claiming: asyncio.Task[bool | None] | None = None
        self._next_claim_at = 0.0

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self._db_threads.run(fn, *args)

    # --- claiming ---------------------------------------------------------------------
    async def _claim(self) -> bool | None:
        """Lease the next batch into the waiting list. True if it found anything, None
        if the claim failed (logged here, once, whichever tasks wait for it)."""
        try:
            wait = self._next_claim_at - time.monotonic()
            if wait > 0 and not self.once:
                await self._sleep(wait)
            assert self._stopping is not None
            if self._stopping.is_set():
                return False
            batch = await self.db(claim_batch, self.owner, self.batch_size)
        except Exception:
            log.exception("claiming mail to deliver failed")
            self.stats["errors"] += 1
            self._next_claim_at = time.monotonic() + 1.0
            return None
        finally:
            self._claiming = None
        if len(batch.recipients) < self.batch_size:
            # The queue is nearly drained: let a little mail gather rather than claiming
            # it a message or two at a time (each claim is a transaction).
            self._next_claim_at = time.monotonic() + GATHER_SECONDS
        if not batch.recipients:
            return False
        self.stats["batches"] += 1
        self._held.update(r.pk for r in batch.recipients)
        by_message: dict[int, list[queue.Claimed]] = {}
        for rcpt in batch.recipients:
            by_message.setdefault(rcpt.message_id, []).append(rcpt)
        self._ready.extend(Job(batch.messages.get(pk), rcpts) for pk, rcpts in by_message.items())
        return True

    async def next_job(self) -> Job | None:
        """The next message to send, claiming more when few are waiting; None when
        nothing is due (or the worker is stopping). Raises ClaimFailed."""
        assert self._stopping is not None
        while not self._stopping.is_set():
            # Claim ahead while tasks still have work, so that none waits for the claim.
            if len(self._ready) <= self.concurrency and self._claiming is None:
                self._claiming = asyncio.create_task(self._claim())
            if self._ready:
                return self._ready.popleft()
            assert self._claiming is not None
            found = await asyncio.shield(self._claiming)
            if found is None:
                raise ClaimFailed
            if not found and not self._ready:
                return None
        return None

    # --- delivering -------------------------------------------------------------------
    async def deliver_job(self, job: Job) -> None:
        """Send one message and commit its outcomes before returning."""
        assert self.transport is not None
        # A recipient whose lease was lost while it waited may be with another worker.
        rcpts = [r for r in job.recipients if r.pk in self._held]
        if not rcpts:
            return
        try:
            if job.message is None:
                return
            outcomes, error = await deliver_message(self.transport, job.message, rcpts)
            if error is not None:
                log.error("delivering message %s raised", job.message.queue_id, exc_info=error)
                self.stats["errors"] += 1
            try:
                await self._recorder.record(outcomes)
            except Exception:
                # The lease stays until it expires; then the message is sent again.
                log.exception("recording the outcome of message %s failed", job.message.queue_id)
                self.stats["errors"] += 1
                return
            self.stats.update(o.reply.outcome for o in outcomes)
            count_deliveries(self.upstream_kind, outcomes)
            if any(notices.may_be_due(o.reply.outcome, o.recipient.notify, o.reply.dsn_passed,
                                      o.message_created) for o in outcomes):
                await self._write_notices([job.message.id])
        finally:
            self._held.difference_update(r.pk for r in rcpts)

    async def _write_notices(self, message_ids: list[int] | None) -> None:
        """Queue the reports owed (all of them when `message_ids` is None); a failure is
        logged, and the next sweep writes them."""
        try:
            if message_ids is None:
                self.stats["dsns"] += await self.db(notices.sweep)
            else:
                self.stats["dsns"] += await self.db(notices.write_due, message_ids)
        except Exception:
            log.exception("writing delivery status notifications failed")
            self.stats["errors"] += 1

    async def _sweep_notices(self) -> None:
        assert self._stopping is not None
        while not self._stopping.is_set():
            await self._write_notices(None)
            await self._sleep(NOTICE_SWEEP_SECONDS)

    async def _sleep(self, seconds: float) -> None:
        assert self._stopping is not None
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            pass

    async def _task(self) -> None:
        assert self._stopping is not None
        failures = 0
        while not self._stopping.is_set():
            try:
                job = await self.next_job()
            except ClaimFailed:
                failures += 1
                # A one-shot run gives up on a database that keeps failing rather than
                # hanging; a long-running worker keeps trying.
                if self.once and failures >= ONCE_MAX_FAILURES:
                    return
                await self._sleep(1.0)
                continue
            failures = 0
            if job is None:
                if self.once:
                    return
                await self._sleep(self.poll_interval)
                continue
            await self.deliver_job(job)

    async def _renew_leases(self) -> None:
        """Keep the leases of held recipients alive, however long their delivery takes."""
        assert self._stopping is not None
        interval = max(settings.DELIVERY_LEASE_SECONDS / 3, 0.2)
        while not self._stopping.is_set():
            await self._sleep(interval)
            held = list(self._held)
            if not held:
                continue
            try:
                kept = await self.db(queue.renew, self.owner, held)
            except Exception:
                log.exception("renewing delivery leases failed")
                continue
            # Rows finished meanwhile are gone from `held` already; the others were lost.
            self._held.difference_update(set(held) - kept)

    async def run(self, stop: asyncio.Event | None = None) -> Counter[str]:
        self._stopping = stop or asyncio.Event()
        self.transport = build_transport(self.upstream)
        self.upstream_kind = parse_upstream(
            self.upstream if self.upstream is not None else settings.RELAY_UPSTREAM).kind
        log.info(
            "delivery worker %s: %d task(s) to %s", self.owner, self.concurrency, self.transport.label
        )
        extra = [asyncio.create_task(self._renew_leases())]
        if self.once:
            await self._write_notices(None)
        else:
            extra.append(asyncio.create_task(self._sweep_notices()))
        try:
            await asyncio.gather(*(self._task() for _ in range(self.concurrency)))
        finally:
            self._stopping.set()
            await self._release_waiting()
            await asyncio.gather(*extra, return_exceptions=True)
            await self.transport.close()
            await self._db_threads.aclose()
        return self.stats

    async def _release_waiting(self) -> None:
        """Give back what was claimed and not started, for another worker to take now."""
        if self._claiming is not None:
            await asyncio.gather(self._claiming, return_exceptions=True)
        left = [r.pk for job in self._ready for r in job.recipients if r.pk in self._held]
        self._ready.clear()
        if left:
            try:
                await self.db(queue.release, self.owner, left)
            except Exception:
                log.exception("releasing %d claimed recipient(s) failed", len(left))
        self._held.difference_update(left)


def run_until_signal(
    concurrency: int | None = None, *, once: bool = False, batch_size: int = BATCH_SIZE
) -> Counter[str]:
    """Run until SIGTERM/SIGINT (or, with `once`, until nothing is due)."""

    async def main() -> Counter[str]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        return await DeliveryWorker(concurrency, once=once, batch_size=batch_size).run(stop)

    return asyncio.run(main())


def deliver_due(concurrency: int = 1, upstream: str | None = None, **kwargs: Any) -> Counter[str]:
    """Deliver everything due now, then return the counts (tests)."""
    worker = DeliveryWorker(concurrency, once=True, upstream=upstream, **kwargs)
    return asyncio.run(worker.run())
