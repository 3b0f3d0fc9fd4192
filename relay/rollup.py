"""Hourly statistics: closed hours folded into counter tables, later hours read live.

The dashboard and the SMTP+ user statistics page chart weeks of traffic. Counting
millions of messages, recipients and attempts on every page view would cost seconds, so
`fold_due()` (run by `manage.py rollup` and by the `sendalerts` loop) adds up each closed
hour once into `HourlyStat` (per account and SMTP+ user) and `DomainHourlyStat` (per
account and recipient domain), and moves `RollupState.folded_until` forward in the same
transaction. The hours after it (the current one, and any the job has not reached) are
counted live by the very same function (`count`, which folding uses), so both halves
agree by construction.

Folding an hour replaces its rows (delete, then insert), so it is idempotent: running it
twice, or two processes racing (the state row is locked), gives the same counters. An
hour is folded `GRACE` after it ends: relay events fold identical refusals within a
minute and every row is committed within seconds.

What is counted in an hour (messages and recipients are never added together):
- accepted: messages accepted (`Message.created`); recipients: their recipients;
- delivered / failed: recipients that reached that status (`Recipient.finished_at`);
- deferred: delivery tries that ended deferred (`Attempt.started`);
- rejected: relay events (refusals, failed logins), by their count, last seen in the hour.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, Min, QuerySet, Sum
from django.db.models.functions import TruncHour
from django.utils import timezone

from relay.models import (
    Attempt,
    DomainDailyStat,
    DomainHourlyStat,
    HourlyStat,
    Message,
    Recipient,
    RecipientStatus,
    RelayEvent,
    RollupState,
    recipient_domain,
)

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
GRACE = timedelta(minutes=5)
# How far back the first run folds (the dashboard shows up to 30 days).
BACKFILL = timedelta(days=31)
STATE = "hourly"
BATCH_HOURS = 24


@dataclass
class Counters:
    accepted: int = 0
    recipients: int = 0
    delivered: int = 0
    deferred: int = 0
    failed: int = 0
    rejected: int = 0

    def add(self, other: Any) -> None:
        """Add another `Counters` or a stat row (the fields it has)."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name, 0))


UserKey = tuple[datetime, int, int | None]  # (hour, account id, SMTP+ user id)
DomainKey = tuple[datetime, int, str]  # (hour, account id, recipient domain)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour(field: str) -> TruncHour:
    return TruncHour(field, tzinfo=UTC)


def _scoped(qs: QuerySet[Any], prefix: str, account_id: int | None,
            smtp_user_id: int | None) -> QuerySet[Any]:
    if account_id is not None:
        qs = qs.filter(**{f"{prefix}account_id": account_id})
    if smtp_user_id is not None:
        qs = qs.filter(**{f"{prefix}smtp_user_id": smtp_user_id})
    return qs


def _window(field: str, start: datetime, end: datetime) -> dict[str, datetime]:
    return {f"{field}__gte": start, f"{field}__lt": end}


@dataclass
class Counts:
    users: dict[UserKey, Counters]
    domains: dict[DomainKey, Counters]


def count(
    start: datetime, end: datetime, *, account_id: int | None = None,
    smtp_user_id: int | None = None, domains: bool = True,
) -> Counts:
    """Counters of [start, end) per (hour, account, SMTP+ user) and, if `domains`, per
    (hour, account, recipient domain), from the source tables: five grouped queries."""
    users: dict[UserKey, Counters] = defaultdict(Counters)
    by_domain: dict[DomainKey, Counters] = defaultdict(Counters)

    def put(rows: Iterable[dict[str, Any]], name: str | None = None) -> None:
        for row in rows:
            counter, n = name or row["status"], row["n"] or 0
            c = users[(row["h"], row["a"], row["u"])]
            setattr(c, counter, getattr(c, counter) + n)
            if "d" in row:
                c = by_domain[(row["h"], row["a"], row["d"])]
                setattr(c, counter, getattr(c, counter) + n)

    def grouped(qs: QuerySet[Any], hour_field: str, prefix: str = "",
                address: str | None = None, *extra: str, total: Any = None) -> QuerySet[Any]:
        qs = _scoped(qs, prefix, account_id, smtp_user_id)
        names = list(extra)
        if domains and address:
            qs = qs.annotate(d=recipient_domain(address))
            names.append("d")
        return (qs.values(*names, h=_hour(hour_field), a=F(f"{prefix}account_id"),
                          u=F(f"{prefix}smtp_user_id"))
                .annotate(n=total or Count("pk")).order_by())

    put(grouped(Message.objects.filter(**_window("created", start, end)), "created"),
        "accepted")
    put(grouped(Recipient.objects.filter(**_window("message__created", start, end)),
                "message__created", "", "address"), "recipients")
    put(grouped(Recipient.objects.filter(
        status__in=[RecipientStatus.DELIVERED, RecipientStatus.FAILED],
        **_window("finished_at", start, end)), "finished_at", "", "address", "status"))
    put(grouped(Attempt.objects.filter(outcome="deferred", **_window("started", start, end)),
                "started", "recipient__", "recipient__address"), "deferred")
    put(grouped(RelayEvent.objects.filter(account__isnull=False,
                                          **_window("last_seen", start, end)),
                "last_seen", total=Sum("count")), "rejected")
    return Counts(dict(users), dict(by_domain))


def fold_hours(start: datetime, end: datetime) -> None:
    """Replace the stored counters of the hours in [start, end) by a fresh count."""
    counts = count(start, end)
    with transaction.atomic():
        HourlyStat.objects.filter(hour__gte=start, hour__lt=end).delete()
        DomainHourlyStat.objects.filter(hour__gte=start, hour__lt=end).delete()
        HourlyStat.objects.bulk_create(
            [HourlyStat(hour=h, account_id=a, smtp_user_id=u, **vars(c))
             for (h, a, u), c in counts.users.items()], batch_size=1000)
        DomainHourlyStat.objects.bulk_create(
            [DomainHourlyStat(hour=h, account_id=a, domain=d[:255], recipients=c.recipients,
                              delivered=c.delivered, deferred=c.deferred, failed=c.failed)
             for (h, a, d), c in counts.domains.items()], batch_size=1000)
        add_up_days(floor_day(start), end)


DOMAIN_COUNTERS = ("recipients", "delivered", "deferred", "failed")


def floor_day(moment: datetime) -> datetime:
    return floor_hour(moment).replace(hour=0)


def add_up_days(start: datetime, end: datetime) -> None:
    """Replace the `DomainDailyStat` rows of the UTC days from `start` (a midnight) to
    the one `end` falls in by the sums of their `DomainHourlyStat` rows."""
    last = floor_day(end - timedelta(microseconds=1)) if end > start else start
    days = int((last - start) / DAY) + 1
    DomainDailyStat.objects.filter(day__gte=start, day__lt=start + days * DAY).delete()
    rows = []
    for day in (start + i * DAY for i in range(days)):
        hours = DomainHourlyStat.objects.filter(hour__gte=day, hour__lt=day + DAY)
        for row in (hours.values("account_id", "domain")
                    .annotate(**{f"s_{n}": Sum(n) for n in DOMAIN_COUNTERS}).order_by()):
            rows.append(DomainDailyStat(day=day, account_id=row["account_id"],
                                        domain=row["domain"],
                                        **{n: row[f"s_{n}"] or 0 for n in DOMAIN_COUNTERS}))
    DomainDailyStat.objects.bulk_create(rows, batch_size=1000)


def first_hour(now: datetime) -> datetime:
    """Where the first run starts: the oldest message or event, at most BACKFILL ago."""
    oldest = [now]
    for model, field in ((Message, "created"), (RelayEvent, "last_seen")):
        found = model.objects.aggregate(m=Min(field))["m"]
        if found:
            oldest.append(found)
    return floor_hour(max(min(oldest), now - BACKFILL))


def folded_until() -> datetime | None:
    """Every hour before this is in the hourly tables (None: nothing folded yet)."""
    state = RollupState.objects.filter(name=STATE).first()
    return state.folded_until if state else None


def _locked_state(now: datetime) -> RollupState:
    try:
        with transaction.atomic():
            state, _ = RollupState.objects.select_for_update().get_or_create(
                name=STATE, defaults={"folded_until": first_hour(now)})
    except IntegrityError:  # another process created it in between
        state = RollupState.objects.select_for_update().get(name=STATE)
    return state


def _fold_next(now: datetime, limit: datetime, most: int) -> list[datetime]:
    """Fold the first hours not folded yet (at most `most`) that ended before `limit`."""
    with transaction.atomic():
        state = _locked_state(now)
        start = state.folded_until
        count = min(most, int((limit - start) / HOUR)) if limit > start else 0
        if count <= 0:
            return []
        end = start + count * HOUR
        fold_hours(start, end)
        state.folded_until = end
        state.updated = timezone.now()
        state.save(update_fields=["folded_until", "updated"])
    return [start + i * HOUR for i in range(count)]


def fold_due(now: datetime | None = None, max_hours: int | None = None) -> list[datetime]:
    """Fold every closed hour not folded yet (at most `max_hours`); the hours folded.

    Hours are counted BATCH_HOURS at a time (one set of range queries for them all), each
    batch in its own transaction with the state row locked."""
    now = now or timezone.now()
    limit = floor_hour(now - GRACE)
    done: list[datetime] = []
    while max_hours is None or len(done) < max_hours:
        most = BATCH_HOURS if max_hours is None else min(BATCH_HOURS, max_hours - len(done))
        folded = _fold_next(now, limit, most)
        if not folded:
            break
        done += folded
    return done


def refold_from(since: datetime) -> None:
    """Fold again every hour from `since` on at the next `fold_due` (after a correction
    of the data, or to extend the history further back)."""
    with transaction.atomic():
        state = _locked_state(timezone.now())
        state.folded_until = min(state.folded_until, floor_hour(since))
        state.save(update_fields=["folded_until"])
