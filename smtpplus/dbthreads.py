"""Synchronous database jobs on a thread pool, for the relay and the delivery workers.

Django's ORM is synchronous and its connections belong to threads: an asyncio process
runs its database work on its own pool of threads, one connection each, kept between
jobs. `DbThreads` is that pool: `run(fn, *args)` from the event loop, and `close()` at the
end, which closes every thread's connection (so a test database can be dropped and a
PostgreSQL server sees no connection left behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from django.db import connections

T = TypeVar("T")

# How long close() waits for every pool thread to take its closing job.
CLOSE_TIMEOUT = 5.0


def prepare_db_connection() -> None:
    """Before each job: drop a broken or expired connection, keep a healthy one.

    Like close_old_connections(), minus two costs on a per-message path: no health
    check query per job (a connection is only checked after an error), and CONN_MAX_AGE=0
    (the SQLite default) keeps the connection instead of reconnecting for every job.
    """
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()
                continue
        max_age = conn.settings_dict.get("CONN_MAX_AGE", 0)
        if max_age and conn.close_at is not None and time.monotonic() >= conn.close_at:
            conn.close()
        else:
            # Django re-checks health once per "request"; our jobs are not requests.
            conn.health_check_done = True  # type: ignore[attr-defined]


def db_job(fn: Callable[..., T], *args: Any) -> T:
    """One job on a pool thread: the connection made ready, then `fn(*args)`."""
    prepare_db_connection()
    return fn(*args)


class DbThreads:
    """A thread pool for synchronous database jobs; each thread keeps its connection."""

    def __init__(self, threads: int, name: str) -> None:
        self.threads = max(1, threads)
        self.executor = ThreadPoolExecutor(self.threads, thread_name_prefix=name)

    def run(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run `fn(*args)` on a pool thread; await the result on the running loop."""
        return asyncio.get_running_loop().run_in_executor(self.executor, db_job, fn, *args)

    def close(self) -> None:
        """Close each pool thread's database connection, then the pool (blocks).

        A barrier holds every started thread in one closing job at once, so each
        thread runs exactly one: no connection is left open on a thread that missed it.
        """
        started = len(getattr(self.executor, "_threads", ())) or 1
        barrier = threading.Barrier(started)

        def close_one() -> None:
            connections.close_all()
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=CLOSE_TIMEOUT)

        for _ in range(started):
            self.executor.submit(close_one)
        self.executor.shutdown(wait=True)

    async def aclose(self) -> None:
        """`close()` from the event loop, without blocking it."""
        await asyncio.get_running_loop().run_in_executor(None, self.close)
