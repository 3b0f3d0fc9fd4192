"""Relay events (rejections, failed logins, limit hits) without a row per failure.

The relay calls `EventBuffer.record()` on the event loop: it only adds to an in-memory
dict, so a flood of failed logins costs no database work at the moment it happens.
The buffer is written by `write_events()` on a worker thread shortly after (and at
shutdown). Under load two things keep the database calm:

- identical events (same kind, client IP, port, username, address, reason, reply,
  SMTP+ user) recorded before a write are folded into one entry with a count;
- when written, an identical event whose row was last seen less than `FOLD_SECONDS` ago
  only increments that row's `count` and `last_seen`.

A batch with more than `MAX_KEYS_PER_WRITE` distinct events (e.g. a dictionary attack
with random usernames) keeps the first ones as they are and folds the rest per kind and
client IP, with the username and address dropped and the reason saying so.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from relay.models import RelayEvent
from smtpplus import metrics

log = logging.getLogger(__name__)

FOLD_SECONDS = 60
MAX_KEYS_PER_WRITE = 500
FOLDED_REASON = "many different events from this client, folded under load"


@dataclass(frozen=True)
class EventKey:
    kind: str
    client_ip: str | None = None
    port: int | None = None
    username: str = ""
    address: str = ""
    reason: str = ""
    reply: str = ""
    account_id: int | None = None
    smtp_user_id: int | None = None


@dataclass
class Tally:
    count: int
    first: datetime
    last: datetime


Batch = dict[EventKey, Tally]


class EventBuffer:
    """Events recorded on the event loop, waiting to be written."""

    def __init__(self) -> None:
        self._pending: Batch = {}

    def record(
        self,
        kind: str,
        *,
        client_ip: str | None = None,
        port: int | None = None,
        username: str = "",
        address: str = "",
        reason: str = "",
        reply: str = "",
        account_id: int | None = None,
        smtp_user_id: int | None = None,
    ) -> None:
        key = EventKey(
            kind, client_ip, port, username[:320], address[:998], reason[:500], reply[:500],
            account_id, smtp_user_id,
        )
        metrics.RELAY_EVENTS.labels(kind).inc()
        now = timezone.now()
        tally = self._pending.get(key)
        if tally is None:
            self._pending[key] = Tally(1, now, now)
        else:
            tally.count += 1
            tally.last = now

    def __len__(self) -> int:
        return len(self._pending)

    def take(self) -> Batch:
        batch, self._pending = self._pending, {}
        return batch


def fold_overflow(batch: Batch, max_keys: int = MAX_KEYS_PER_WRITE) -> Batch:
    if len(batch) <= max_keys:
        return batch
    items = list(batch.items())
    result: Batch = dict(items[:max_keys])
    for key, tally in items[max_keys:]:
        folded = replace(key, username="", address="", reason=FOLDED_REASON, smtp_user_id=None,
                         account_id=None)
        seen = result.get(folded)
        if seen is None:
            result[folded] = Tally(tally.count, tally.first, tally.last)
        else:
            seen.count += tally.count
            seen.first = min(seen.first, tally.first)
            seen.last = max(seen.last, tally.last)
    return result


def write_events(batch: Batch) -> int:
    """Write a batch: fold into recent identical rows or create new ones. Synchronous.

    Returns the number of rows written or updated.
    """
    batch = fold_overflow(batch)
    new: list[RelayEvent] = []
    with transaction.atomic():
        for key, tally in batch.items():
            # EventKey's fields are RelayEvent's attribute names; `account_id=None` and the
            # like read as IS NULL, which is what folding needs.
            match = vars(key)
            updated = (
                RelayEvent.objects.filter(
                    **match, last_seen__gte=tally.first - timedelta(seconds=FOLD_SECONDS)
                )
                .order_by()
                .update(count=F("count") + tally.count, last_seen=tally.last)
            )
            if not updated:
                new.append(RelayEvent(
                    **match, count=tally.count, created=tally.first, last_seen=tally.last
                ))
        # The keys of a batch are distinct: a row created here cannot be one that a later
        # key of the same batch would fold into.
        RelayEvent.objects.bulk_create(new)
    return len(batch)
