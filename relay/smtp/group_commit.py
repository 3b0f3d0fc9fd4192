"""The group commit: the messages that finish DATA together are stored together.

One transaction per group instead of per message, with a 250 for each client only
after the transaction holding its message has committed (`RelayStore.store_messages`
does the write).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

import psycopg
from django.db import DataError, IntegrityError

from smtpplus import metrics

if TYPE_CHECKING:
    from relay.smtp.accept import Submission
    from relay.smtp.store import RelayStore

# What one message of a group can cause (a value the database refuses), as Django and,
# on the event-loop path, psycopg raise it.
_BAD_MESSAGE = (IntegrityError, DataError, psycopg.IntegrityError, psycopg.DataError)


class GroupCommit:
    """Stores messages with as few transactions as the load allows.

    A message is written at once if no transaction is under way; messages that finish
    DATA during one wait and go into the next transaction together. Each client still
    gets its 250 only after the transaction holding its message has committed.
    """

    MAX_BATCH = 100

    def __init__(self, loop: asyncio.AbstractEventLoop, store: RelayStore) -> None:
        self.loop = loop
        self.store = store
        self.writing = False
        self.pending: list[tuple[Submission, asyncio.Future[str]]] = []

    def submit(self, submission: Submission) -> asyncio.Future[str]:
        future: asyncio.Future[str] = self.loop.create_future()
        self.pending.append((submission, future))
        if not self.writing:
            self.writing = True
            self.loop.create_task(self._write())
        return future

    async def _write(self) -> None:
        try:
            while self.pending:
                batch = self.pending[: self.MAX_BATCH]
                del self.pending[: self.MAX_BATCH]
                started = time.perf_counter()
                try:
                    ids = await self.store.store_messages([s for s, _ in batch])
                except Exception as exc:
                    if len(batch) == 1 or not isinstance(exc, _BAD_MESSAGE):
                        # The database itself failed (down, full, …): one attempt per
                        # message would only hammer it, every client gets its 451 now.
                        for _, future in batch:
                            _settle(future, exc=exc)
                        continue
                    # One bad message must not fail the others: retry them one by one.
                    for submission, future in batch:
                        try:
                            ids = await self.store.store_messages([submission])
                        except Exception as one_exc:
                            _settle(future, exc=one_exc)
                        else:
                            metrics.RELAY_ACCEPTED.inc()
                            _settle(future, ids[0])
                    continue
                metrics.RELAY_COMMIT_SECONDS.observe(time.perf_counter() - started)
                metrics.RELAY_COMMIT_GROUP.observe(len(batch))
                metrics.RELAY_ACCEPTED.inc(len(batch))
                for (_, future), queue_id in zip(batch, ids, strict=True):
                    _settle(future, queue_id)
        finally:
            self.writing = False


def _settle(future: asyncio.Future[str], result: str = "", exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
