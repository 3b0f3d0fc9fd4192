"""Traffic statistics for the dashboard and the SMTP+ user statistics page.

Volume over a period (24 hours, 7 days, 30 days) in buckets, totals, delivery and bounce
rates, and the top SMTP+ users and recipient domains. Hours that `relay.rollup` has
folded are read from the hourly tables (a few hundred rows for 30 days), the rest (the
current hour, and any the job has not reached) live from the source tables with the
same counting functions; so a page costs the same at 5 million messages as at 50.

Every number links to the messages log or the relay events page filtered to exactly
what it counts (`relay.console.filters`: since/until, event, domain). Messages,
recipients and relay events are counted apart and never share a row of counters.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q, Sum
from django.urls import get_script_prefix, reverse
from django.utils import timezone

from accounts.models import Account, SmtpUser
from relay import rollup
from relay.console.charts import Cell, Chart, Row, Series, layout
from relay.models import DomainDailyStat, DomainHourlyStat, HourlyStat
from relay.rollup import DAY, HOUR, Counters, floor_hour

TOP = 10  # rows of each top list


@dataclass(frozen=True)
class Period:
    key: str
    label: str
    buckets: int
    bucket: timedelta
    label_format: str  # strftime of a bucket's start
    bucket_label: str  # "hour"


PERIODS = {
    p.key: p for p in (
        Period("24h", "Last 24 hours", 24, HOUR, "%H:%M", "hour"),
        Period("7d", "Last 7 days", 28, 6 * HOUR, "%a %H:%M", "6 hours"),
        Period("30d", "Last 30 days", 30, 24 * HOUR, "%b %d %H:%M", "day"),
    )
}
DEFAULT_PERIOD = "24h"

COUNTERS = ("accepted", "recipients", "delivered", "deferred", "failed", "rejected")
RECIPIENT_SERIES = [Series("delivered", "Delivered", "series-delivered"),
                    Series("deferred", "Deferred (tries)", "series-deferred"),
                    Series("failed", "Failed", "series-failed")]
# Which log each counter's link opens, and with which event: (page, event).
LINKS = {
    "accepted": ("relay:messages", ""),
    "recipients": ("relay:messages", ""),
    "delivered": ("relay:messages", "delivered"),
    "deferred": ("relay:messages", "deferred"),
    "failed": ("relay:messages", "failed"),
    "rejected": ("relay:events", ""),
}


def moment(value: datetime) -> str:
    """A time as the log's since/until filters take it (console time zone, minutes)."""
    return timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")


_pages: dict[tuple[str, str], str] = {}


def _page(name: str) -> str:
    """reverse(name), once per script prefix: a page has hundreds of links."""
    key = (name, get_script_prefix())
    url = _pages.get(key)
    if url is None:
        url = _pages[key] = reverse(name)
    return url


def link(counter: str, start: datetime, end: datetime, **filters: Any) -> str:
    page, event = LINKS[counter]
    params = {k: v for k, v in filters.items() if v not in (None, "")}
    if event:
        params["event"] = event
    params.update(since=moment(start), until=moment(end))
    return f"{_page(page)}?{urlencode(params)}"


@dataclass
class Window:
    period: Period
    start: datetime
    end: datetime
    split: datetime  # hours before it are read from the rollups, the rest live

    def bucket_of(self, hour: datetime) -> int:
        return int((hour - self.start) / self.period.bucket)

    def bucket_start(self, i: int) -> datetime:
        return self.start + i * self.period.bucket


def window(period_key: str | None, now: datetime | None = None) -> Window:
    period = PERIODS.get(period_key or "", PERIODS[DEFAULT_PERIOD])
    end = floor_hour(now or timezone.now()) + HOUR
    start = end - period.buckets * period.bucket
    folded = rollup.folded_until() or start
    return Window(period, start, end, min(max(folded, start), end))


def _stored(qs: Any, win: Window) -> Any:
    return qs.filter(hour__gte=win.start, hour__lt=win.split)


def _sums(names: tuple[str, ...]) -> dict[str, Sum]:
    return {f"s_{n}": Sum(n) for n in names}


def _counters(row: dict[str, Any], names: tuple[str, ...] = COUNTERS) -> Counters:
    return Counters(**{n: row[f"s_{n}"] or 0 for n in names})


def _domain_rows(account: Account, win: Window) -> list[Any]:
    """The account's stored domain counters of the folded part of the window: whole UTC
    days from the daily rows, the hours before and after them from the hourly ones."""
    first = rollup.floor_day(win.start)
    first += DAY if first < win.start else timedelta(0)
    last = rollup.floor_day(win.split)
    hourly = DomainHourlyStat.objects.filter(account=account)
    if last <= first:
        return [_stored(hourly, win)]
    return [hourly.filter(Q(hour__gte=win.start, hour__lt=first)
                          | Q(hour__gte=last, hour__lt=win.split)),
            DomainDailyStat.objects.filter(account=account, day__gte=first, day__lt=last)]


@dataclass
class Statistics:
    """What the charts, totals and top lists are drawn from."""

    window: Window
    buckets: list[Counters]
    users: dict[int | None, Counters]
    domains: dict[str, Counters] | None  # None on one user's page

    @property
    def total(self) -> Counters:
        total = Counters()
        for bucket in self.buckets:
            total.add(bucket)
        return total


def gather(account: Account, win: Window, smtp_user: SmtpUser | None = None) -> Statistics:
    buckets = [Counters() for _ in range(win.period.buckets)]
    users: dict[int | None, Counters] = defaultdict(Counters)
    stored = _stored(HourlyStat.objects.filter(account=account), win)
    if smtp_user is not None:
        stored = stored.filter(smtp_user=smtp_user)
    # Summed by the database per hour (720 rows for 30 days) and per SMTP+ user, and
    # added into the buckets as plain numbers: at this size Python's per-row work is
    # what counts.
    sums = [[0] * len(COUNTERS) for _ in buckets]
    for hour, *values in (stored.values_list("hour").annotate(*(Sum(n) for n in COUNTERS))
                          .order_by()):
        into = sums[win.bucket_of(hour)]
        for i, value in enumerate(values):
            into[i] += value or 0
    for bucket, values in zip(buckets, sums, strict=True):
        bucket.add(Counters(**dict(zip(COUNTERS, values, strict=True))))
    for row in stored.values("smtp_user_id").annotate(**_sums(COUNTERS)).order_by():
        users[row["smtp_user_id"]].add(_counters(row))
    live = rollup.count(win.split, win.end, account_id=account.pk,
                        smtp_user_id=smtp_user.pk if smtp_user else None,
                        domains=smtp_user is None)
    for (hour, _account, user_id), counters in live.users.items():
        buckets[win.bucket_of(hour)].add(counters)
        users[user_id].add(counters)
    domains: dict[str, Counters] | None = None
    if smtp_user is None:
        domains = defaultdict(Counters)
        names = rollup.DOMAIN_COUNTERS
        for rows in _domain_rows(account, win):
            for row in rows.values("domain").annotate(**_sums(names)).order_by():
                domains[row["domain"]].add(_counters(row, names))
        for (_h, _a, domain), counters in live.domains.items():
            domains[domain].add(counters)
    return Statistics(win, buckets, dict(users), dict(domains) if domains is not None else None)


# --- What the templates show ----------------------------------------------------------


@dataclass
class Number:
    label: str
    value: int
    href: str
    id: str
    bad: bool = False


@dataclass
class Rate:
    label: str
    value: str  # "97.5 %" or "—"
    explanation: str


@dataclass
class Ranked:
    name: str
    href: str  # the user's statistics page, or "" (a domain, a deleted user)
    number: Number


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "—"


def number(counter: str, label: str, value: int, win: Window, *, bad: bool = False,
           prefix: str = "count", **filters: Any) -> Number:
    return Number(label, value, link(counter, win.start, win.end, **filters),
                  f"{prefix}-{counter}", bad and value > 0)


def charts(stats: Statistics, **filters: Any) -> list[Chart]:
    win = stats.window
    labels = [timezone.localtime(win.bucket_start(i)).strftime(win.period.label_format)
              for i in range(win.period.buckets)]

    def rows(names: list[str]) -> list[Row]:
        out = []
        for i, (label, c) in enumerate(zip(labels, stats.buckets, strict=True)):
            start = win.bucket_start(i)
            end = start + win.period.bucket
            out.append(Row(label, [Cell(getattr(c, n), link(n, start, end, **filters))
                                   for n in names]))
        return out

    made = [
        Chart("chart-messages", "Messages accepted", "messages",
              [Series("accepted", "Accepted", "series-accepted")], rows(["accepted"])),
        Chart("chart-recipients", "Recipients delivered, deferred and failed", "recipients",
              RECIPIENT_SERIES, rows([s.name for s in RECIPIENT_SERIES])),
        Chart("chart-rejected", "Rejected at the relay (logins, senders, limits)",
              "relay events", [Series("rejected", "Rejected", "series-rejected")],
              rows(["rejected"])),
    ]
    return [layout(c) for c in made]


def totals(stats: Statistics, **filters: Any) -> dict[str, Any]:
    t, win = stats.total, stats.window
    finished = t.delivered + t.failed
    return {
        "messages": [number("accepted", "messages accepted", t.accepted, win, **filters)],
        "recipients": [
            number("recipients", "recipients in those messages", t.recipients, win, **filters),
            number("delivered", "recipients delivered", t.delivered, win, **filters),
            number("deferred", "delivery tries deferred", t.deferred, win, **filters),
            number("failed", "recipients failed", t.failed, win, bad=True, **filters),
        ],
        "relay": [number("rejected", "rejected at the relay (logins, senders, limits)",
                         t.rejected, win, bad=True, **filters)],
        "rates": [
            Rate("delivery rate", _percent(t.delivered, finished),
                 "recipients delivered ÷ recipients delivered or failed in the period"),
            Rate("bounce rate", _percent(t.failed, finished),
                 "recipients failed ÷ recipients delivered or failed in the period"),
        ],
    }


def _top(items: list[tuple[str, int, Callable[[], Ranked]]]) -> list[Ranked]:
    """The TOP largest of (name, value, make): by value, then name; only those are made
    (with their links), not the hundred domains behind them."""
    items = [i for i in items if i[1]]
    items.sort(key=lambda i: (-i[1], i[0]))
    return [make() for _name, _value, make in items[:TOP]]


def top_users(stats: Statistics, account: Account,
              smtp_users: list[SmtpUser] | None = None) -> dict[str, list[Ranked]]:
    """`smtp_users`: the account's, if the caller has them already."""
    win = stats.window
    if smtp_users is None:
        smtp_users = list(SmtpUser.objects.filter(account=account, pk__in=[
            k for k in stats.users if k is not None]).only("id", "name", "username"))
    names = {u.pk: u for u in smtp_users}

    def make(counter: str, label: str, user: SmtpUser, value: int) -> Ranked:
        return Ranked(str(user), reverse("relay:user_stats", args=[user.pk]),
                      number(counter, label, value, win, prefix=f"user-{user.pk}", user=user.pk))

    def ranked(counter: str, label: str, value: Callable[[Counters], int]) -> list[Ranked]:
        items: list[tuple[str, int, Callable[[], Ranked]]] = []
        for user_id, c in stats.users.items():
            user = names.get(user_id) if user_id is not None else None
            n = value(c)
            if user is None:  # a deleted SMTP+ user, or events of no known user
                items.append(("(no SMTP+ user)", n, partial(
                    Ranked, "(no SMTP+ user)", "", Number(label, n, "", ""))))
                continue
            items.append((str(user), n, partial(make, counter, label, user, n)))
        return _top(items)

    return {
        "by_volume": ranked("accepted", "messages accepted", lambda c: c.accepted),
        "by_failures": ranked("failed", "recipients failed", lambda c: c.failed),
        "by_rejections": ranked("rejected", "rejected at the relay", lambda c: c.rejected),
    }


def top_domains(stats: Statistics) -> dict[str, list[Ranked]]:
    win = stats.window
    domains = stats.domains or {}

    def make(counter: str, label: str, domain: str, value: int) -> Ranked:
        n = number(counter, label, value, win, domain=domain)
        n.id = ""  # a domain is no safe HTML id
        return Ranked(domain, "", n)

    def ranked(counter: str, label: str, value: Callable[[Counters], int]) -> list[Ranked]:
        return _top([(domain, value(c), partial(make, counter, label, domain, value(c)))
                     for domain, c in domains.items()])

    return {
        "by_volume": ranked("recipients", "recipients", lambda c: c.recipients),
        "by_failures": ranked("failed", "recipients failed", lambda c: c.failed),
    }


def period_choices(current: str) -> list[dict[str, Any]]:
    return [{"key": p.key, "label": p.label, "current": p.key == current}
            for p in PERIODS.values()]


def statistics_context(account: Account, period_key: str | None,
                       smtp_user: SmtpUser | None = None,
                       smtp_users: list[SmtpUser] | None = None) -> dict[str, Any]:
    """`smtp_user`: that user's statistics; `smtp_users`: all the account's, if the
    caller has them already (the dashboard)."""
    win = window(period_key)
    stats = gather(account, win, smtp_user)
    filters: dict[str, Any] = {"user": smtp_user.pk} if smtp_user else {}
    context: dict[str, Any] = {
        "window": win,
        "period": win.period,
        "periods": period_choices(win.period.key),
        "charts": charts(stats, **filters),
        "totals": totals(stats, **filters),
        "live_since": win.split,
        "folded_part": win.split > win.start,
    }
    if smtp_user is None:
        context["top_users"] = top_users(stats, account, smtp_users)
        context["top_domains"] = top_domains(stats)
    return context

