"""Operator actions on queued recipients: retry now and cancel.

Used by the console (single recipient or a filtered selection) and by
`manage.py queue`. Every call that changes something writes one audit row per account
it touched. A recipient a worker is delivering right now (live lease) is left alone: the
worker's result would otherwise contradict what the admin asked for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts import audit
from accounts.audit import Actor
from accounts.models import Account
from relay.delivery.queue import not_leased
from relay.models import PENDING_STATUSES, FailReason, Recipient, RecipientStatus

RecipientsArg = QuerySet[Recipient] | Iterable[Recipient | int]

# The statuses each action applies to; other recipients are left alone.
_REQUEUE_STATUSES: tuple[str, ...] = (RecipientStatus.FAILED, RecipientStatus.CANCELLED)
RETRY_STATUSES: tuple[str, ...] = (RecipientStatus.DEFERRED, *_REQUEUE_STATUSES)
CANCEL_STATUSES: tuple[str, ...] = PENDING_STATUSES

# Ids listed in an audit row; the count is always exact.
AUDIT_ID_LIMIT = 100


def _queryset(recipients: RecipientsArg, account: Account | None) -> QuerySet[Recipient]:
    if isinstance(recipients, QuerySet):
        qs = Recipient.objects.filter(pk__in=recipients.values_list("pk", flat=True))
    else:
        ids = [r.pk if isinstance(r, Recipient) else int(r) for r in recipients]
        qs = Recipient.objects.filter(pk__in=ids)
    if account is not None:
        qs = qs.filter(account=account)
    return qs


def _audit(
    action: str,
    changed: list[tuple[int, int, str]],
    actor: Actor | None,
) -> None:
    by_account: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for pk, account_id, address in changed:
        by_account[account_id].append((pk, address))
    accounts = Account.objects.in_bulk(list(by_account))
    for account_id, rows in by_account.items():
        if len(rows) == 1:
            label = f"recipient {rows[0][0]} <{rows[0][1]}>"
        else:
            label = f"{len(rows)} recipients"
        audit.record(
            action,
            account=accounts.get(account_id),
            actor=actor,
            target_label=label,
            details={
                "count": len(rows),
                "recipients": [pk for pk, _ in rows[:AUDIT_ID_LIMIT]],
            },
        )


def _scope(actor: Actor | None, account: Account | None) -> Account | None:
    # An actor from the console is always scoped to its current account, even if the
    # caller forgot to filter the selection.
    if account is None and actor is not None:
        return actor.account
    return account


def _transition(
    recipients: RecipientsArg,
    actor: Actor | None,
    account: Account | None,
    action: str,
    changes: dict[tuple[str, ...], dict[str, Any]],
) -> int:
    """Apply `changes[statuses]` to the recipients in those statuses that no worker holds,
    with one audit row per account touched. Returns how many changed."""
    now = timezone.now()
    qs = _queryset(recipients, _scope(actor, account))
    statuses = [status for group in changes for status in group]
    with transaction.atomic():
        eligible = qs.filter(not_leased(now), status__in=statuses)
        changed = list(eligible.values_list("pk", "account_id", "address"))
        if not changed:
            return 0
        ids = [pk for pk, _, _ in changed]
        count = 0
        for group, fields in changes.items():
            # The conditions again, not just the ids: a worker may have claimed a row since.
            rows = Recipient.objects.filter(not_leased(now), pk__in=ids, status__in=group)
            count += rows.update(**fields)
        _audit(action, changed, actor)
    return count


def retry_now(
    recipients: RecipientsArg,
    *,
    actor: Actor | None = None,
    account: Account | None = None,
) -> int:
    """Make recipients due now: deferred ones keep their history; failed and cancelled
    ones go back to the queue. Returns how many changed."""
    now = timezone.now()
    requeue: dict[str, Any] = {
        "status": RecipientStatus.QUEUED,
        "next_attempt_at": now,
        "finished_at": None,
        "fail_reason": "",
        "lease_owner": "",
        "lease_until": None,
    }
    changes: dict[tuple[str, ...], dict[str, Any]] = {
        (RecipientStatus.DEFERRED,): {"next_attempt_at": now},
        _REQUEUE_STATUSES: requeue,
    }
    return _transition(recipients, actor, account, "queue.retry", changes)


def cancel(
    recipients: RecipientsArg,
    *,
    actor: Actor | None = None,
    account: Account | None = None,
) -> int:
    """Stop delivering queued and deferred recipients. Returns how many changed."""
    stop: dict[str, Any] = {
        "status": RecipientStatus.CANCELLED,
        "finished_at": timezone.now(),
        "fail_reason": FailReason.CANCELLED,
        "lease_owner": "",
        "lease_until": None,
    }
    return _transition(recipients, actor, account, "queue.cancel", {CANCEL_STATUSES: stop})
