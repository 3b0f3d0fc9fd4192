"""Filters and keyset pagination for the messages log and the relay events page.

Pages are cut by keyset on (time, id) rather than OFFSET with a COUNT(*): with hundreds
of thousands of messages per account, "newer/older" links stay as cheap as the first page.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from django import forms
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import Account
from relay.models import (
    Attempt,
    Message,
    Recipient,
    RecipientStatus,
    RelayEvent,
    recipient_domain,
)

PAGE_SIZE = 50
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def filter_params(form: forms.Form) -> dict[str, str]:
    """The form's non-empty filters as submitted (for links and hidden fields)."""
    return {name: value for name in form.fields if (value := form.data.get(name))}


def _day_start(day: Any) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def filter_messages(account: Account, filters: dict[str, Any]) -> QuerySet[Message]:
    """The account's messages matching cleaned `MessageFilterForm` data, newest first."""
    qs = Message.objects.filter(account=account)
    if filters.get("user"):
        qs = qs.filter(smtp_user=filters["user"])
    if filters.get("status"):
        qs = qs.filter(
            Exists(Recipient.objects.filter(message=OuterRef("pk"), status=filters["status"]))
        )
    sender = (filters.get("sender") or "").strip()
    if sender:
        if filters.get("sender_match") == "equals":
            qs = qs.filter(envelope_from__iexact=sender)
        else:
            qs = qs.filter(envelope_from__icontains=sender)
    # Delivery reports (DSNs) are the messages SMTP+ wrote itself, from the null sender.
    if filters.get("kind") == "dsn":
        qs = qs.filter(envelope_from="")
    elif filters.get("kind") == "mail":
        qs = qs.exclude(envelope_from="")
    recipient = (filters.get("recipient") or "").strip()
    if recipient:
        qs = qs.filter(
            Exists(Recipient.objects.filter(message=OuterRef("pk"), address__icontains=recipient))
        )
    qs = _period_filter(account, qs, filters)
    if filters.get("date_from"):
        qs = qs.filter(created__gte=_day_start(filters["date_from"]))
    if filters.get("date_to"):
        qs = qs.filter(created__lt=_day_start(filters["date_to"] + timedelta(days=1)))
    return qs.order_by("-created", "-id")


# A recipient reaches a state (and a try ends) after its message was accepted; this
# much more allows for the clocks of the relay and delivery machines not agreeing.
CLOCK_SLACK = timedelta(minutes=5)
# Up to this many matching recipients (or tries), their messages are looked up by id.
LISTED_AT_MOST = 1000


def _with_messages_of(qs: QuerySet[Message], matching: QuerySet[Any]) -> QuerySet[Message]:
    """`qs` narrowed to the messages `matching` (message ids) names. When few match —
    a small domain, a rare state, a quiet period — they are fetched first (from the
    index) and their messages looked up by id: a semi-join's walk through the messages
    newest first would read every older message to find them. When many match, the
    semi-join finds a page of them among the newest at once."""
    matching = matching.order_by()  # any LIMIT'ed rows will do: no sort
    ids = list(matching[: LISTED_AT_MOST + 1])
    if len(ids) <= LISTED_AT_MOST:
        return qs.filter(pk__in=set(ids))
    return qs.filter(pk__in=matching)


def _period_filter(account: Account, qs: QuerySet[Message], filters: dict[str, Any]
                   ) -> QuerySet[Message]:
    """The period (since/until) and recipient domain filters, as the statistics count:
    messages accepted in the period, or with a recipient delivered, deferred (a try that
    ended deferred) or failed in it. Domain and event apply to the same recipient.

    The matching recipients (or tries) are read from an index on the state and its time,
    or on the domain (`_with_messages_of`); the messages are those accepted before the
    period's end."""
    since, until, event = filters.get("since"), filters.get("until"), filters.get("event")
    domain = filters.get("domain") or ""
    if event in (RecipientStatus.DELIVERED, RecipientStatus.FAILED, RecipientStatus.DEFERRED):
        if event == RecipientStatus.DEFERRED:
            matching: QuerySet[Any] = Attempt.objects.filter(
                outcome="deferred", recipient__account=account)
            moment, address, message = "started", "recipient__address", "recipient__message_id"
        else:
            matching = Recipient.objects.filter(account=account, status=event)
            moment, address, message = "finished_at", "address", "message_id"
        if filters.get("user"):  # a recipient's SMTP+ user is its message's
            matching = matching.filter(**{f"{address.removesuffix('address')}smtp_user":
                                          filters["user"]})
        if since:
            matching = matching.filter(**{f"{moment}__gte": since})
        if until:
            matching = matching.filter(**{f"{moment}__lt": until})
            # Nothing accepted after the period reached a state in it.
            qs = qs.filter(created__lt=until + CLOCK_SLACK)
        if domain:
            matching = matching.alias(d=recipient_domain(address)).filter(d=domain)
            if until:
                # The same bound on the recipient (its `created` is its message's): the
                # domain's index is read up to the period's end only.
                matching = matching.filter(**{f"{address.removesuffix('address')}created__lt":
                                              until + CLOCK_SLACK})
        return _with_messages_of(qs, matching.values_list(message, flat=True))
    if since:
        qs = qs.filter(created__gte=since)
    if until:
        qs = qs.filter(created__lt=until)
    if domain:
        # A recipient's `created` is its message's: the (account, domain, created) index
        # holds the recipients of a domain accepted in the period.
        rcpts = Recipient.objects.filter(account=account).alias(
            d=recipient_domain()).filter(d=domain)
        if since:
            rcpts = rcpts.filter(created__gte=since)
        if until:
            rcpts = rcpts.filter(created__lt=until)
        qs = _with_messages_of(qs, rcpts.values_list("message_id", flat=True))
    return qs


def selection_recipients(
    account: Account, filters: dict[str, Any], statuses: tuple[str, ...]
) -> QuerySet[Recipient]:
    """Recipients with one of `statuses` in the messages the filters select (bulk actions)."""
    messages = filter_messages(account, filters).order_by().values("pk")
    return Recipient.objects.filter(account=account, status__in=statuses, message__in=messages)


def filter_events(account: Account, filters: dict[str, Any]) -> QuerySet[RelayEvent]:
    qs = RelayEvent.objects.filter(account=account)
    if filters.get("user"):
        qs = qs.filter(smtp_user=filters["user"])
    if filters.get("kind"):
        qs = qs.filter(kind=filters["kind"])
    if filters.get("since"):
        qs = qs.filter(last_seen__gte=filters["since"])
    if filters.get("until"):
        qs = qs.filter(last_seen__lt=filters["until"])
    return qs.order_by("-last_seen", "-id")


# --- Keyset pagination ----------------------------------------------------------------


def encode_cursor(moment: datetime, pk: int) -> str:
    delta = moment - EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return f"{micros}_{pk}"


def decode_cursor(value: str | None) -> tuple[datetime, int] | None:
    """`encode_cursor`'s inverse; None for anything malformed (the first page is shown)."""
    if not value:
        return None
    micros_s, sep, pk_s = value.partition("_")
    try:
        micros, pk = int(micros_s), int(pk_s)
        return EPOCH + timedelta(microseconds=micros), pk
    except (ValueError, OverflowError):
        return None


@dataclass
class KeysetPage:
    items: list[Any] = field(default_factory=list)
    newer: str | None = None  # cursor for ?after=
    older: str | None = None  # cursor for ?before=

    @property
    def has_other_pages(self) -> bool:
        return bool(self.newer or self.older)


def keyset_page(
    qs: QuerySet[Any],
    *,
    time_field: str,
    before: str | None = None,
    after: str | None = None,
    size: int = PAGE_SIZE,
) -> KeysetPage:
    """One page of `qs` (ordered newest first by `time_field`, then id).

    `before`: the page of rows older than that cursor; `after`: rows newer than it.
    The redundant `<=`/`>=` bound lets the database use the (…, time) index as a range.
    """
    older_than, newer_than = decode_cursor(before), decode_cursor(after)
    if older_than is not None:
        moment, pk = older_than
        rows = list(
            qs.filter(**{f"{time_field}__lte": moment})
            .filter(Q(**{f"{time_field}__lt": moment}) | Q(pk__lt=pk))[: size + 1]
        )
        page = KeysetPage(rows[:size])
        has_newer, has_older = True, len(rows) > size
    elif newer_than is not None:
        moment, pk = newer_than
        rows = list(
            qs.filter(**{f"{time_field}__gte": moment})
            .filter(Q(**{f"{time_field}__gt": moment}) | Q(pk__gt=pk))
            .order_by(time_field, "pk")[: size + 1]
        )
        page = KeysetPage(list(reversed(rows[:size])))
        has_newer, has_older = len(rows) > size, True
    else:
        rows = list(qs[: size + 1])
        page = KeysetPage(rows[:size])
        has_newer, has_older = False, len(rows) > size
    if page.items:
        first, last = page.items[0], page.items[-1]
        if has_newer:
            page.newer = encode_cursor(getattr(first, time_field), first.pk)
        if has_older:
            page.older = encode_cursor(getattr(last, time_field), last.pk)
    return page
