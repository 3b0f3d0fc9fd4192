"""The hourly statistics: folded hours hold exactly what the source tables say, folding
is idempotent, hours split at the boundary, and each account's rows are its own."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.utils import timezone

from relay import rollup
from relay.delivery.worker import deliver_due
from relay.models import (
    Attempt,
    DomainHourlyStat,
    EventKind,
    HourlyStat,
    Message,
    Recipient,
    RecipientStatus,
    RelayEvent,
)
from tests.alerts.conftest import failed_message, relay_event
from tests.fake_upstream import queue_message

# The delivery worker runs its database work on threads of its own.
pytestmark = pytest.mark.django_db(transaction=True)

COUNTERS = ("accepted", "recipients", "delivered", "deferred", "failed", "rejected")


def stored(**scope) -> dict[str, int]:
    sums = HourlyStat.objects.filter(**scope).aggregate(**{c: Sum(c) for c in COUNTERS})
    return {c: sums[c] or 0 for c in COUNTERS}


def direct(account) -> dict[str, int]:
    """The same counters straight from the messages, recipients, attempts and events."""
    rcpts = Recipient.objects.filter(account=account)
    return {
        "accepted": Message.objects.filter(account=account).count(),
        "recipients": rcpts.count(),
        "delivered": rcpts.filter(status=RecipientStatus.DELIVERED).count(),
        "deferred": Attempt.objects.filter(recipient__account=account, outcome="deferred").count(),
        "failed": rcpts.filter(status=RecipientStatus.FAILED).count(),
        "rejected": RelayEvent.objects.filter(account=account).aggregate(n=Sum("count"))["n"] or 0,
    }


def fold_everything() -> list[datetime]:
    """Fold every hour up to now, the current one included (as if it were closed)."""
    return rollup.fold_due(timezone.now() + timedelta(hours=2))


@pytest.fixture
def traffic(cast, upstream):
    """Mail delivered for real through the fake upstream: 3 messages, 5 recipients
    (3 delivered, 1 refused, 1 deferred), plus relay events, and a little for Globex.
    Each refusal makes SMTP+ send a delivery report to the sender (shop@acme.test,
    crm@globex.test): one more message, delivered, in each account."""
    upstream.replies["bad@example.net"] = "550 5.1.1 No such user"
    upstream.replies["later@other.test"] = "451 4.3.0 Busy"
    earlier = timezone.now() - timedelta(hours=3)
    queue_message(cast.acme_smtp, ["a@example.net"], created=earlier)
    queue_message(cast.acme_smtp, ["b@example.net", "bad@example.net"])
    queue_message(cast.acme_smtp, ["c@Other.TEST", "later@other.test"])
    queue_message(cast.globex_smtp, ["g@example.net", "bad@example.net"], sender="crm@globex.test")
    deliver_due(upstream=upstream.url())
    relay_event(cast.acme_smtp, EventKind.SENDER_REJECTED, count=3)
    relay_event(cast.acme_smtp, EventKind.AUTH_FAILED)
    relay_event(cast.globex_smtp, EventKind.AUTH_FAILED, count=40)
    return cast


def test_folded_hours_hold_what_the_tables_say(traffic):
    fold_everything()
    acme = stored(account=traffic.acme)
    assert acme == direct(traffic.acme)
    assert acme == {"accepted": 4, "recipients": 6, "delivered": 4, "deferred": 1, "failed": 1,
                    "rejected": 4}
    assert stored(account=traffic.globex) == direct(traffic.globex)
    assert stored(smtp_user=traffic.acme_smtp) == acme


def test_the_domains_table_counts_recipients_by_lower_case_domain(traffic):
    fold_everything()
    rows = {r.domain: r for r in DomainHourlyStat.objects.filter(account=traffic.acme)}
    totals = {d: (0, 0, 0, 0) for d in rows}
    for r in DomainHourlyStat.objects.filter(account=traffic.acme):
        rec, dl, df, fl = totals[r.domain]
        totals[r.domain] = (rec + r.recipients, dl + r.delivered, df + r.deferred, fl + r.failed)
    assert totals == {"example.net": (3, 2, 0, 1), "other.test": (2, 1, 1, 0),
                      "acme.test": (1, 1, 0, 0)}  # the delivery report


def test_an_account_never_sees_another_accounts_counts(traffic):
    fold_everything()
    globex = stored(account=traffic.globex)
    assert globex == {"accepted": 2, "recipients": 3, "delivered": 2, "deferred": 0, "failed": 1,
                      "rejected": 40}
    assert not HourlyStat.objects.filter(account=traffic.acme, smtp_user=traffic.globex_smtp)
    live = rollup.count(timezone.now() - timedelta(days=1), timezone.now() + rollup.HOUR,
                        account_id=traffic.acme.pk).users
    assert {account for _h, account, _u in live} == {traffic.acme.pk}


def test_folding_again_gives_the_same_counters(traffic):
    fold_everything()
    before = sorted(HourlyStat.objects.values_list("hour", "account", "smtp_user", *COUNTERS))
    domains = sorted(DomainHourlyStat.objects.values_list("hour", "domain", "recipients"))
    rollup.refold_from(timezone.now() - timedelta(days=1))
    assert fold_everything()
    for hour in {h for h, *_ in before}:
        rollup.fold_hours(hour, hour + rollup.HOUR)
    assert sorted(HourlyStat.objects.values_list("hour", "account", "smtp_user", *COUNTERS)) == before
    assert sorted(DomainHourlyStat.objects.values_list("hour", "domain", "recipients")) == domains
    assert fold_everything() == []  # nothing left to fold


def test_the_live_count_of_unfolded_hours_equals_the_folded_one(traffic):
    start, end = timezone.now() - timedelta(days=1), timezone.now() + timedelta(hours=1)
    live = rollup.count(start, end, account_id=traffic.acme.pk).users
    fold_everything()
    for (hour, _account, user), counters in live.items():
        row = HourlyStat.objects.get(hour=hour, account=traffic.acme, smtp_user_id=user)
        assert {c: getattr(row, c) for c in COUNTERS} == vars(counters)
    assert len(live) == HourlyStat.objects.filter(account=traffic.acme).count()


def test_an_hour_boundary_splits_the_counts(cast):
    eleven = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    just_before = eleven - timedelta(microseconds=1)
    queue_message(cast.acme_smtp, ["x@example.net"], created=just_before)
    queue_message(cast.acme_smtp, ["y@example.net"], created=eleven)
    failed_message(cast.acme_smtp, ["z@example.net"], created=just_before, finished_at=eleven)
    relay_event(cast.acme_smtp, EventKind.AUTH_FAILED, last_seen=just_before, created=just_before)
    rollup.refold_from(eleven - timedelta(hours=2))
    rollup.fold_due(eleven + timedelta(hours=1) + rollup.GRACE)
    ten = HourlyStat.objects.get(account=cast.acme, hour=eleven - rollup.HOUR)
    at_eleven = HourlyStat.objects.get(account=cast.acme, hour=eleven)
    assert (ten.accepted, ten.recipients, ten.failed, ten.rejected) == (2, 2, 0, 1)
    assert (at_eleven.accepted, at_eleven.recipients, at_eleven.failed, at_eleven.rejected) == (1, 1, 1, 0)


def test_an_hour_is_folded_only_after_the_grace_period(cast):
    eleven = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    queue_message(cast.acme_smtp, ["x@example.net"], created=eleven + timedelta(minutes=59))
    rollup.refold_from(eleven)
    assert rollup.fold_due(eleven + rollup.HOUR + rollup.GRACE - timedelta(seconds=1)) == []
    assert not HourlyStat.objects.exists()
    assert rollup.fold_due(eleven + rollup.HOUR + rollup.GRACE) == [eleven]
    assert rollup.folded_until() == eleven + rollup.HOUR
    assert HourlyStat.objects.get().accepted == 1


def test_the_first_run_starts_at_the_oldest_data_within_the_backfill(cast):
    now = timezone.now()
    queue_message(cast.acme_smtp, ["x@example.net"], created=now - timedelta(days=90))
    queue_message(cast.acme_smtp, ["y@example.net"], created=now - timedelta(hours=5))
    rollup.fold_due(now, max_hours=1)
    assert rollup.folded_until() == rollup.floor_hour(now - rollup.BACKFILL) + rollup.HOUR


def test_the_command_folds_and_prints_json(traffic):
    out = StringIO()
    call_command("rollup", stdout=out)
    result = json.loads(out.getvalue())
    assert result["hours_folded"] >= 2  # 3 hours ago up to the last closed hour
    assert result["folded_until"] == rollup.folded_until().isoformat()
    out = StringIO()
    call_command("rollup", stdout=out)
    assert json.loads(out.getvalue())["hours_folded"] == 0


def daily_and_hourly(account) -> tuple[dict, dict]:
    """The domain counters of each UTC day, from the daily rows and added up hourly."""
    from relay.models import DomainDailyStat

    names = rollup.DOMAIN_COUNTERS
    daily = {(r.day, r.domain): tuple(getattr(r, n) for n in names)
             for r in DomainDailyStat.objects.filter(account=account)}
    hourly: dict = {}
    for r in DomainHourlyStat.objects.filter(account=account):
        key = (rollup.floor_day(r.hour), r.domain)
        hourly[key] = tuple(a + getattr(r, n) for a, n in zip(hourly.get(key, (0,) * 4), names,
                                                              strict=True))
    return daily, hourly


def test_each_days_domain_row_is_the_sum_of_its_hours_also_after_refolding(cast):
    now = timezone.now()
    for days_ago, hours_ago, address in ((2, 1, "a@other.test"), (2, 5, "b@other.test"),
                                         (1, 3, "c@other.test"), (1, 3, "d@example.net")):
        queue_message(cast.acme_smtp, [address],
                      created=now - timedelta(days=days_ago, hours=hours_ago))
    rollup.fold_due()
    daily, hourly = daily_and_hourly(cast.acme)
    assert daily == hourly and sum(v[0] for v in daily.values()) == 4
    late = queue_message(cast.acme_smtp, ["e@other.test"], created=now - timedelta(days=2))
    rollup.refold_from(late.created)
    rollup.fold_due()
    daily, hourly = daily_and_hourly(cast.acme)
    assert daily == hourly and sum(v[0] for v in daily.values()) == 5
