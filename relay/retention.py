"""Retention: after RETENTION_DAYS, message bodies and detailed history go.

What stays is what the messages log needs: every message's envelope and decoded
headers, and each recipient's final status with the last reply (code, enhanced code,
text) — so "what happened to my message" can still be answered. What goes: the raw
message (`raw` emptied, `pruned` set) of messages whose recipients are all finished,
the per-try Attempt rows, and relay events. Deletes run in batches so a large backlog
never holds long locks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Model, QuerySet
from django.utils import timezone

from relay.models import PENDING_STATUSES, Attempt, Message, Recipient, RelayEvent

BATCH = 2000


@dataclass
class PruneResult:
    cutoff: datetime
    messages_pruned: int = 0
    attempts_deleted: int = 0
    events_deleted: int = 0


def prunable_messages(cutoff: datetime) -> QuerySet[Message]:
    pending = Recipient.objects.filter(status__in=PENDING_STATUSES).values("message_id")
    return Message.objects.filter(created__lt=cutoff, pruned=False).exclude(pk__in=pending)


def _in_batches(qs: QuerySet[Model], action: str, batch: int) -> int:
    total = 0
    while True:
        ids = list(qs.order_by().values_list("pk", flat=True)[:batch])
        if not ids:
            return total
        with transaction.atomic():
            # The batch's conditions again, not just its ids: a message retried since the
            # ids were read is pending again and keeps its body.
            rows = qs.filter(pk__in=ids)
            if action == "delete":
                total += rows.delete()[1].get(qs.model._meta.label, 0)
            else:
                total += rows.update(raw=None, pruned=True)


def prune(days: int | None = None, *, now: datetime | None = None, batch: int = BATCH) -> PruneResult:
    days = settings.RETENTION_DAYS if days is None else days
    if days < 1:
        raise ValueError("retention must be at least one day")
    cutoff = (now or timezone.now()) - timedelta(days=days)
    result = PruneResult(cutoff)
    result.messages_pruned = _in_batches(prunable_messages(cutoff), "prune", batch)
    result.attempts_deleted = _in_batches(Attempt.objects.filter(started__lt=cutoff), "delete", batch)
    result.events_deleted = _in_batches(
        RelayEvent.objects.filter(last_seen__lt=cutoff), "delete", batch
    )
    return result
