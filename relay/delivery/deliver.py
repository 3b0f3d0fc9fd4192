"""Delivering one claimed message and recording what happened to each recipient.

One SMTP transaction per message with all of its claimed recipients; the outcome is per
recipient: 2xx delivered, 5xx failed, anything temporary (4xx, timeout, refused or lost
connection, DNS trouble) deferred with a doubling backoff — until the message is older
than DELIVERY_LIFETIME, then failed as `FailReason.EXPIRED`. Every try is an Attempt with
the `FailReason` its transport gave, a try that raised included (an internal error that
defers, so it backs off and expires too).

The outcomes of a message are committed as soon as its transaction has ended, before its
worker task starts another (`OutcomeRecorder`), so a crashed worker re-sends at most the
messages it was sending at that moment. The database work is plain synchronous functions
(`claim_batch`, `record_outcomes`) that the worker runs on a thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from relay.delivery import notices, queue, signing
from relay.delivery.dkim_sign import MessageSigner
from relay.delivery.upstreams import Transport
from relay.delivery.upstreams.reply import Reply
from relay.models import Attempt, FailReason, Message, RecipientStatus

log = logging.getLogger(__name__)

T = TypeVar("T")
RunDb = Callable[..., Awaitable[Any]]


@dataclass
class Outcome:
    recipient: queue.Claimed
    message_created: datetime
    reply: Reply
    started: datetime
    duration_ms: int
    # Delivery raised before the upstream answered: the try counts (attempts, backoff,
    # lifetime) but the status stays as it was.
    raised: bool = False


def retry_delay(attempts: int) -> timedelta:
    """Wait before the next try after `attempts` tries: first, doubling, capped."""
    first = settings.DELIVERY_RETRY_FIRST
    seconds = min(first * 2 ** max(attempts - 1, 0), settings.DELIVERY_RETRY_MAX)
    return timedelta(seconds=max(seconds, 0))


def _new_state(outcome: Outcome, now: datetime) -> dict[str, Any]:
    reply = outcome.reply
    state: dict[str, Any] = {
        "last_code": reply.code,
        "last_enhanced": reply.enhanced[:16],
        "last_text": reply.text,
        "last_reason": reply.reason,
        "finished_at": None,
        "fail_reason": "",
    }
    result = reply.outcome
    if result == "delivered":
        state.update(status=RecipientStatus.DELIVERED, finished_at=now,
                     dsn_due=notices.due_on_delivery(outcome.recipient.notify, reply.dsn_passed))
        return state
    if result == "failed":
        state.update(status=RecipientStatus.FAILED, finished_at=now, fail_reason=reply.reason,
                     dsn_due=notices.DUE_FAILED)
        return state
    expires = outcome.message_created + timedelta(seconds=settings.DELIVERY_LIFETIME)
    if now >= expires:
        state.update(status=RecipientStatus.FAILED, finished_at=now, fail_reason=FailReason.EXPIRED,
                     dsn_due=notices.DUE_FAILED)
        return state
    # The last try is made at the expiry time, not after it.
    state["next_attempt_at"] = min(now + retry_delay(outcome.recipient.attempts + 1), expires)
    if not outcome.raised:
        state["status"] = RecipientStatus.DEFERRED
    return state


def record_outcomes(owner: str, outcomes: list[Outcome]) -> int:
    """Store every attempt — one made by a worker whose lease ran out meanwhile too, as
    it did happen — and the recipients' new state, where this worker still holds the
    lease (the others are left as they are). Returns how many recipients were updated."""
    if not outcomes:
        return 0
    now = timezone.now()
    updates = [(o.recipient.pk, _new_state(o, now)) for o in outcomes]
    attempts = [
        {
            "recipient": o.recipient.pk,
            "started": o.started,
            "duration_ms": o.duration_ms,
            "upstream": o.reply.host[:255],
            "code": o.reply.code,
            "enhanced": o.reply.enhanced[:16],
            "text": o.reply.text,
            "outcome": o.reply.outcome,
            "reason": o.reply.reason,
        }
        for o in outcomes
    ]
    if connection.vendor == "postgresql":
        return queue.finish_with_attempts(owner, updates, attempts)
    with transaction.atomic():
        Attempt.objects.bulk_create(
            [
                Attempt(recipient_id=o.recipient.pk, **{k: v for k, v in row.items() if k != "recipient"})
                for o, row in zip(outcomes, attempts, strict=True)
            ]
        )
        return queue.finish(owner, updates)


@dataclass
class LoadedMessage:
    id: int
    queue_id: str
    envelope_from: str
    created: datetime
    raw: bytes | None
    dsn_ret: str = ""
    dsn_envid: str = ""
    account_id: int = 0
    # Signs the message for its From: domain (DKIM), after the transport's downgrade.
    signer: MessageSigner | None = None


def load_messages(ids: list[int]) -> dict[int, LoadedMessage]:
    rows = Message.objects.filter(pk__in=ids).values_list(
        "id", "queue_id", "envelope_from", "created", "raw", "dsn_ret", "dsn_envid", "account_id"
    )
    loaded: dict[int, LoadedMessage] = {}
    for pk, qid, sender, created, raw, ret, envid, account_id in rows:
        body = bytes(raw) if raw is not None else None
        loaded[pk] = LoadedMessage(pk, qid, sender, created, body, ret, envid, account_id,
                                   signing.signer_for(account_id, body, qid))
    return loaded


@dataclass
class Batch:
    recipients: list[queue.Claimed]
    messages: dict[int, LoadedMessage]


def claim_batch(owner: str, limit: int) -> Batch:
    """Lease a batch and read its messages: one unit of database work, one thread hop."""
    claimed = queue.claim(owner, limit)
    if not claimed:
        return Batch([], {})
    return Batch(claimed, load_messages(list(dict.fromkeys(r.message_id for r in claimed))))


async def deliver_message(
    transport: Transport, message: LoadedMessage, rcpts: list[queue.Claimed]
) -> tuple[list[Outcome], Exception | None]:
    """One SMTP transaction for a message and its claimed recipients: the outcomes,
    and the error if delivery raised (then its outcomes are temporary failures, so the
    message backs off and expires like any other)."""
    started = timezone.now()
    t0 = time.monotonic()
    try:
        if message.raw is None:
            gone = Reply(None, "5.3.0", "The message body is no longer stored", transport.label,
                         reason=FailReason.UNDELIVERABLE)
            replies = {r.address: gone for r in rcpts}
        else:
            # Recipients are compared as sent: one reply per distinct address.
            addresses = list(dict.fromkeys(r.address for r in rcpts))
            replies = await transport.send(message.envelope_from, addresses, message.raw,
                                           dsn=notices.request_of(message.dsn_ret, message.dsn_envid, rcpts),
                                           sign=message.signer)
    except Exception as exc:
        reply = Reply(None, "4.3.0", f"Delivery raised {type(exc).__name__}: {exc}", transport.label,
                      reason=FailReason.INTERNAL_ERROR)
        duration = int((time.monotonic() - t0) * 1000)
        return [Outcome(r, message.created, reply, started, duration, raised=True) for r in rcpts], exc
    duration = int((time.monotonic() - t0) * 1000)
    missing = Reply(None, "4.3.0", "No reply for this recipient", transport.label,
                    reason=FailReason.INTERNAL_ERROR)
    return [
        Outcome(r, message.created, replies.get(r.address, missing), started, duration)
        for r in rcpts
    ], None


class OutcomeRecorder:
    """Writes each message's outcomes as soon as its SMTP transaction has ended.

    Group commit: outcomes that arrive while a write is running go together in the next
    one, so a busy worker writes few transactions while an idle one writes at once.
    `record()` returns once the outcomes are committed (or raises if they could not be).
    """

    # Writes in flight at once: a commit waits mostly for the database, so a second one
    # overlaps it; more would only split the groups into more transactions.
    MAX_WRITES = 1

    def __init__(self, owner: str, run_db: RunDb) -> None:
        self.owner = owner
        self.run_db = run_db
        self._waiting: list[tuple[list[Outcome], asyncio.Future[None]]] = []
        self._active = 0
        self._writers: set[asyncio.Task[None]] = set()  # referenced until done

    async def record(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((outcomes, done))
        if self._active < self.MAX_WRITES:
            self._active += 1
            writer = asyncio.create_task(self._write())
            self._writers.add(writer)
            writer.add_done_callback(self._writers.discard)
        await done

    async def _write(self) -> None:
        try:
            while self._waiting:
                group, self._waiting = self._waiting, []
                try:
                    await self.run_db(record_outcomes, self.owner, [o for g, _ in group for o in g])
                except Exception as exc:
                    if len(group) == 1:
                        _settle(group[0][1], exc)
                        continue
                    # One message's outcomes must not keep the others' from being stored.
                    for outcomes, done in group:
                        try:
                            await self.run_db(record_outcomes, self.owner, outcomes)
                        except Exception as one:
                            _settle(done, one)
                        else:
                            _settle(done, None)
                    continue
                for _, done in group:
                    _settle(done, None)
        finally:
            # Counted down here, not in a done callback: a record() arriving before the
            # callback ran would otherwise find no writer free and wait forever.
            self._active -= 1


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():  # its waiter was cancelled
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)

