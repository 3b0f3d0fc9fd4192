"""The delivery loop: N asyncio tasks that claim, deliver and record, until stopped.

Each task repeats one unit — "claim a batch, deliver it, record it; return True if there
may be more" — and sleeps briefly when the queue has nothing due. The database work runs
on a thread pool (one connection per thread); the network talk on the event loop, with
smarthost connections shared and reused by all tasks. A batch that raises is logged and
the task goes on (the try was recorded first, so the message concerned waits for its next
attempt).

Entry points: `manage.py deliver` (`run_until_signal`), tests (`deliver_due`).
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import connections

from relay import queue
from relay.delivery import claim_batch, deliver_claimed, run_sync
from relay.upstreams import Transport, build_transport

log = logging.getLogger(__name__)

ALERTS_INTERVAL = 10.0
ONCE_MAX_FAILURES = 3
GATHER_SECONDS = 0.05
# Recipients each task claims at a time.
BATCH_SIZE = 20


class DeliveryWorker:
    def __init__(
        self,
        concurrency: int | None = None,
        *,
        once: bool = False,
        batch_size: int = BATCH_SIZE,
        upstream: str | None = None,
        poll_interval: float = 1.0,
        alerts_interval: float | None = ALERTS_INTERVAL,
    ) -> None:
        self.concurrency = max(1, concurrency or settings.DELIVERY_CONCURRENCY)
        self.once = once
        self.batch_size = batch_size
        self.upstream = upstream
        self.poll_interval = poll_interval
        self.alerts_interval = alerts_interval
        self.owner = queue.new_worker_id()
        self.stats: Counter[str] = Counter()
        self.transport: Transport | None = None
        self._executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix="delivery-db")
        self._stopping: asyncio.Event | None = None

    async def db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await run_sync(fn, *args, executor=self._executor)

    async def deliver_one_batch(self) -> bool:
        """One unit of work. True if there may be more due right now."""
        assert self.transport is not None
        batch = await self.db(claim_batch, self.owner, self.batch_size)
        if not batch.recipients:
            return False
        outcomes = await deliver_claimed(self.transport, self.owner, batch, self.db)
        self.stats.update(o.reply.outcome for o in outcomes)
        self.stats["batches"] += 1
        if len(batch.recipients) < self.batch_size and not self.once:
            # The queue is nearly drained: let a little mail gather rather than
            # claiming it a message or two at a time (each claim is a transaction).
            await self._sleep(GATHER_SECONDS)
        return True

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
                more = await self.deliver_one_batch()
            except Exception:
                log.exception("delivery batch failed")
                self.stats["errors"] += 1
                failures += 1
                # A one-shot run gives up on a database that keeps failing rather than
                # hanging; a long-running worker keeps trying.
                if self.once and failures >= ONCE_MAX_FAILURES:
                    return
                await self._sleep(1.0)
                continue
            failures = 0
            if not more:
                if self.once:
                    return
                await self._sleep(self.poll_interval)

    async def _alerts(self) -> None:
        """Every ~10 s, let the alert sender do its rounds, if it is installed."""
        assert self._stopping is not None and self.alerts_interval is not None
        with ThreadPoolExecutor(1, thread_name_prefix="alerts") as pool:
            while not self._stopping.is_set():
                await self._sleep(self.alerts_interval)
                run_once = _alerts_run_once()
                if run_once is None:
                    return
                try:
                    await run_sync(run_once, executor=pool)
                except Exception:
                    log.exception("alerts run_once raised")
            await run_sync(connections.close_all, executor=pool)

    async def run(self, stop: asyncio.Event | None = None) -> Counter[str]:
        self._stopping = stop or asyncio.Event()
        self.transport = build_transport(self.upstream)
        log.info(
            "delivery worker %s: %d task(s) to %s", self.owner, self.concurrency, self.transport.label
        )
        extra = []
        if self.alerts_interval and not self.once:
            extra.append(asyncio.create_task(self._alerts()))
        try:
            await asyncio.gather(*(self._task() for _ in range(self.concurrency)))
        finally:
            self._stopping.set()
            await asyncio.gather(*extra, return_exceptions=True)
            await self.transport.close()
            await self._close_db_connections()
            self._executor.shutdown(wait=False)
        return self.stats

    async def _close_db_connections(self) -> None:
        # Each pool thread holds its own connection; a barrier makes every thread run one
        # of these jobs, so every connection is closed (a test database can be dropped).
        barrier = threading.Barrier(self.concurrency)

        def close() -> None:
            try:
                barrier.wait(timeout=5)
            except threading.BrokenBarrierError:
                pass
            connections.close_all()

        loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(loop.run_in_executor(self._executor, close) for _ in range(self.concurrency))
        )


def _alerts_run_once() -> Callable[[], Any] | None:
    try:
        module = importlib.import_module("alerts.sending")
    except ModuleNotFoundError:
        return None
    return getattr(module, "run_once", None)


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
