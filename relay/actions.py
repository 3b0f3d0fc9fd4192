"""Operator actions on queued recipients: retry now and cancel.

Used by the console (single recipient or a filtered selection) and by
`manage.py queue`. Every call that changes something writes one audit row per account
it touched. A recipient a worker is delivering right now (live lease) is left alone: the
worker's result would otherwise contradict what the admin asked for.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime

from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from accounts import audit
from accounts.models import Account
from relay.models import Recipient, RecipientStatus

RecipientsArg = QuerySet[Recipient] | Iterable[Recipient | int]

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


def _not_in_flight(now: datetime) -> Q:
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def _audit(
    action: str,
    changed: list[tuple[int, int, str]],
    request: HttpRequest | None,
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
            request=request,
            target_label=label,
            details={
                "count": len(rows),
                "recipients": [pk for pk, _ in rows[:AUDIT_ID_LIMIT]],
            },
        )


def _scope(request: HttpRequest | None, account: Account | None) -> Account | None:
    # A console request is always scoped to its current account, even if the caller
    # forgot to filter the selection.
    if account is None and request is not None:
        return getattr(request, "account", None)
    return account


def retry_now(
    recipients: RecipientsArg,
    *,
    request: HttpRequest | None = None,
    account: Account | None = None,
) -> int:
    """Make recipients due now: deferred ones keep their history; failed and cancelled
    ones go back to the queue. Returns how many changed."""
    now = timezone.now()
    qs = _queryset(recipients, _scope(request, account))
    with transaction.atomic():
        deferred = qs.filter(_not_in_flight(now), status=RecipientStatus.DEFERRED)
        finished = qs.filter(
            _not_in_flight(now), status__in=[RecipientStatus.FAILED, RecipientStatus.CANCELLED]
        )
        changed = list(deferred.values_list("pk", "account_id", "address"))
        changed += list(finished.values_list("pk", "account_id", "address"))
        if not changed:
            return 0
        ids = [pk for pk, _, _ in changed]
        count = Recipient.objects.filter(
            _not_in_flight(now), pk__in=ids, status=RecipientStatus.DEFERRED
        ).update(next_attempt_at=now)
        count += Recipient.objects.filter(
            _not_in_flight(now),
            pk__in=ids,
            status__in=[RecipientStatus.FAILED, RecipientStatus.CANCELLED],
        ).update(
            status=RecipientStatus.QUEUED,
            next_attempt_at=now,
            finished_at=None,
            fail_reason="",
            lease_owner="",
            lease_until=None,
        )
        _audit("queue.retry", changed, request)
    return count


def cancel(
    recipients: RecipientsArg,
    *,
    request: HttpRequest | None = None,
    account: Account | None = None,
) -> int:
    """Stop delivering queued and deferred recipients. Returns how many changed."""
    now = timezone.now()
    qs = _queryset(recipients, _scope(request, account))
    with transaction.atomic():
        pending = qs.filter(
            _not_in_flight(now), status__in=[RecipientStatus.QUEUED, RecipientStatus.DEFERRED]
        )
        changed = list(pending.values_list("pk", "account_id", "address"))
        if not changed:
            return 0
        count = Recipient.objects.filter(
            _not_in_flight(now),
            pk__in=[pk for pk, _, _ in changed],
            status__in=[RecipientStatus.QUEUED, RecipientStatus.DEFERRED],
        ).update(
            status=RecipientStatus.CANCELLED,
            finished_at=now,
            fail_reason="cancelled",
            lease_owner="",
            lease_until=None,
        )
        _audit("queue.cancel", changed, request)
    return count
