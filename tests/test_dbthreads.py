"""`smtpplus.dbthreads.DbThreads`: the one pool the relay and the delivery workers run
their synchronous database jobs on, and that closes every thread's connection at the end."""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connections

from accounts.models import Account
from smtpplus.dbthreads import DbThreads

THREADS = 3


def _count_accounts(barrier: threading.Barrier, seen: dict[str, object]) -> int:
    # The barrier keeps each job on its own thread, so every thread opens a connection.
    barrier.wait(timeout=10)
    seen[threading.current_thread().name] = connections["default"]
    return Account.objects.count()


@pytest.mark.django_db(transaction=True)
def test_it_runs_jobs_on_its_threads_and_closes_every_threads_connection():
    pool = DbThreads(THREADS, "test-db")
    barrier = threading.Barrier(THREADS)
    seen: dict[str, object] = {}

    async def main() -> list[int]:
        return list(await asyncio.gather(
            *(pool.run(_count_accounts, barrier, seen) for _ in range(THREADS))
        ))

    assert asyncio.run(main()) == [0] * THREADS
    assert len(seen) == THREADS and all(name.startswith("test-db") for name in seen)
    assert all(conn.connection is not None for conn in seen.values())
    pool.close()
    assert all(conn.connection is None for conn in seen.values())


@pytest.mark.django_db(transaction=True)
def test_a_jobs_error_reaches_the_caller_and_the_pool_goes_on():
    pool = DbThreads(1, "test-db")

    def fail() -> None:
        raise ValueError("bad row")

    async def main() -> int:
        with pytest.raises(ValueError, match="bad row"):
            await pool.run(fail)
        return await pool.run(Account.objects.count)

    try:
        assert asyncio.run(main()) == 0
    finally:
        asyncio.run(pool.aclose())
