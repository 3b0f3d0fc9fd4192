"""The queue: claiming with leases, order, fairness, and operator actions."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from relay.delivery import actions, deliver, queue
from relay.delivery.deliver import Outcome, record_outcomes
from relay.delivery.upstreams.reply import Reply
from relay.delivery.worker import DeliveryWorker, deliver_due
from relay.models import Recipient, RecipientStatus
from tests.fake_upstream import queue_message

pytestmark = pytest.mark.django_db


def rcpt_of(message) -> Recipient:
    return message.recipients.get()


def test_a_claim_leases_due_recipients_and_no_one_else_gets_them(cast):
    m = queue_message(cast.acme_smtp, ["a@example.net", "b@example.net"])

    first = queue.claim("worker-1", 10)
    second = queue.claim("worker-2", 10)

    assert sorted(r.address for r in first) == ["a@example.net", "b@example.net"]
    assert second == []
    for r in m.recipients.all():
        assert r.lease_owner == "worker-1"
        assert r.lease_until > timezone.now()
        assert r.status == RecipientStatus.QUEUED


def test_an_expired_lease_can_be_claimed_again(cast):
    m = queue_message(cast.acme_smtp, ["a@example.net"])
    queue.claim("crashed-worker", 10, lease_seconds=60)
    assert queue.claim("worker-2", 10) == []

    Recipient.objects.filter(message=m).update(lease_until=timezone.now() - timedelta(seconds=1))

    assert [r.address for r in queue.claim("worker-2", 10)] == ["a@example.net"]


def test_a_worker_that_lost_its_lease_cannot_overwrite_the_result(cast):
    m = queue_message(cast.acme_smtp, ["a@example.net"])
    [mine] = queue.claim("slow-worker", 10)
    # The lease ran out and another worker took the recipient and delivered it.
    Recipient.objects.filter(pk=mine.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    [theirs] = queue.claim("fast-worker", 10)
    delivered = Reply(250, "2.0.0", "Ok", "upstream")
    assert record_outcomes("fast-worker", [Outcome(theirs, m.created, delivered, timezone.now(), 5)]) == 1

    refused = Reply(451, "4.3.0", "Try later", "upstream")
    assert record_outcomes("slow-worker", [Outcome(mine, m.created, refused, timezone.now(), 5)]) == 0

    rcpt = rcpt_of(m)
    assert rcpt.status == RecipientStatus.DELIVERED
    assert rcpt.last_code == 250
    # Both tries are in the history, as they both happened.
    assert rcpt.attempt_set.count() == 2


def test_recipients_are_claimed_by_priority_then_due_time(cast):
    from accounts.actions.smtp_users import create_smtp_user

    urgent, _ = create_smtp_user(cast.acme, name="Password resets")
    urgent.priority = 1
    urgent.save()
    now = timezone.now()
    late = queue_message(cast.acme_smtp, ["late@example.net"], created=now - timedelta(minutes=1))
    early = queue_message(cast.acme_smtp, ["early@example.net"], created=now - timedelta(minutes=5))
    first = queue_message(urgent, ["urgent@example.net"], sender="reset@acme.test", created=now)

    order = [r.address for r in queue.claim("w", 1) + queue.claim("w", 1) + queue.claim("w", 1)]

    assert order == ["urgent@example.net", "early@example.net", "late@example.net"]
    assert first and late and early


def test_new_mail_is_not_starved_by_a_backlog_of_retries(cast):
    long_ago = timezone.now() - timedelta(hours=2)
    backlog = queue_message(
        cast.acme_smtp, [f"retry{i}@example.net" for i in range(40)], created=long_ago
    )
    backlog.recipients.update(status=RecipientStatus.DEFERRED, attempts=3)
    fresh = queue_message(cast.acme_smtp, ["new@example.net"])
    fresh.recipients.update(next_attempt_at=timezone.now())

    # The retries were due long before; the fresh message still makes the first batch.
    batch = queue.claim("w", 8)

    assert "new@example.net" in [r.address for r in batch]


def test_retries_still_get_a_share_of_each_batch_under_a_flood_of_new_mail(cast):
    old = queue_message(cast.acme_smtp, ["retry@example.net"])
    old.recipients.update(status=RecipientStatus.DEFERRED)
    for i in range(20):
        queue_message(cast.acme_smtp, [f"new{i}@example.net"])

    batch = queue.claim("w", 8)

    assert "retry@example.net" in [r.address for r in batch]


def test_all_due_recipients_of_a_message_are_claimed_together(cast):
    m = queue_message(cast.acme_smtp, [f"r{i}@example.net" for i in range(5)])

    batch = queue.claim("w", 1)

    assert sorted(r.pk for r in batch) == sorted(m.recipients.values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)
def test_a_message_that_keeps_raising_is_pushed_later_and_the_worker_goes_on(cast, upstream):
    bad = queue_message(cast.acme_smtp, ["bad@example.net"])
    good = queue_message(cast.acme_smtp, ["good@example.net"])
    # A stored body of the wrong type makes delivery raise (as a bug would).
    from relay.delivery import deliver

    original = deliver.load_messages

    def broken_load(ids):
        loaded = original(ids)
        if bad.pk in loaded:
            loaded[bad.pk].raw = "not bytes"  # type: ignore[assignment]
        return loaded

    deliver.load_messages = broken_load
    try:
        stats = deliver_due(upstream=upstream.url(), batch_size=1)
    finally:
        deliver.load_messages = original

    assert stats["errors"] == 1
    assert rcpt_of(good).status == RecipientStatus.DELIVERED
    stuck = rcpt_of(bad)
    assert stuck.status == RecipientStatus.QUEUED
    assert stuck.lease_owner == ""
    assert stuck.next_attempt_at > timezone.now() + timedelta(seconds=200)


@pytest.fixture
def breaking_bodies(monkeypatch) -> set[int]:
    """Ids of messages whose stored body makes delivery raise (as a bug would)."""
    broken: set[int] = set()
    original = deliver.load_messages

    def load(ids):
        loaded = original(ids)
        for pk in broken & set(loaded):
            loaded[pk].raw = "not bytes"  # type: ignore[assignment]
        return loaded

    monkeypatch.setattr(deliver, "load_messages", load)
    return broken


@pytest.mark.django_db(transaction=True)
def test_each_try_that_raises_is_recorded_and_backs_off_like_a_deferral(
    cast, upstream, breaking_bodies, settings
):
    bad = queue_message(cast.acme_smtp, ["bad@example.net"])
    breaking_bodies.add(bad.pk)

    for tries in (1, 2):
        before = timezone.now()
        assert deliver_due(upstream=upstream.url())["errors"] == 1
        stuck = rcpt_of(bad)
        assert stuck.attempts == tries
        wait = timedelta(seconds=settings.DELIVERY_RETRY_FIRST * 2 ** (tries - 1))
        assert before + wait <= stuck.next_attempt_at <= timezone.now() + wait
        Recipient.objects.filter(pk=stuck.pk).update(next_attempt_at=timezone.now())

    attempts = list(stuck.attempt_set.all())
    assert len(attempts) == 2
    assert {(a.outcome, a.enhanced) for a in attempts} == {("deferred", "4.3.0")}
    assert all(a.text.startswith("Delivery raised") for a in attempts)
    assert upstream.received == []


@pytest.mark.django_db(transaction=True)
def test_a_message_that_keeps_raising_fails_as_expired_after_the_lifetime(
    cast, upstream, breaking_bodies, settings
):
    old = timezone.now() - timedelta(seconds=settings.DELIVERY_LIFETIME + 60)
    bad = queue_message(cast.acme_smtp, ["bad@example.net"], created=old)
    breaking_bodies.add(bad.pk)

    deliver_due(upstream=upstream.url())

    stuck = rcpt_of(bad)
    assert stuck.status == RecipientStatus.FAILED
    assert stuck.fail_reason == "expired"
    assert stuck.last_enhanced == "4.3.0"


def test_retry_now_makes_deferred_mail_due_and_requeues_failed_mail(cast):
    deferred = rcpt_of(queue_message(cast.acme_smtp, ["d@example.net"]))
    failed = rcpt_of(queue_message(cast.acme_smtp, ["f@example.net"]))
    delivered = rcpt_of(queue_message(cast.acme_smtp, ["ok@example.net"]))
    later = timezone.now() + timedelta(hours=1)
    Recipient.objects.filter(pk=deferred.pk).update(status="deferred", next_attempt_at=later)
    Recipient.objects.filter(pk=failed.pk).update(
        status="failed", finished_at=timezone.now(), fail_reason="expired"
    )
    Recipient.objects.filter(pk=delivered.pk).update(status="delivered")

    changed = actions.retry_now(Recipient.objects.filter(account=cast.acme))

    assert changed == 2
    deferred.refresh_from_db()
    failed.refresh_from_db()
    assert deferred.status == "deferred" and deferred.next_attempt_at <= timezone.now()
    assert failed.status == "queued" and failed.finished_at is None and failed.fail_reason == ""
    event = AuditEvent.objects.get(action="queue.retry")
    assert event.account == cast.acme
    assert event.details["count"] == 2
    assert sorted(event.details["recipients"]) == sorted([deferred.pk, failed.pk])
    assert event.actor_label.startswith("command line")


def test_cancel_stops_pending_mail_and_leaves_finished_mail_alone(cast):
    queued = rcpt_of(queue_message(cast.acme_smtp, ["q@example.net"]))
    delivered = rcpt_of(queue_message(cast.acme_smtp, ["ok@example.net"]))
    Recipient.objects.filter(pk=delivered.pk).update(status="delivered")

    assert actions.cancel([queued, delivered]) == 1

    queued.refresh_from_db()
    assert queued.status == "cancelled"
    assert queued.fail_reason == "cancelled"
    assert queued.finished_at is not None
    assert AuditEvent.objects.get(action="queue.cancel").target_label == f"recipient {queued.pk} <q@example.net>"
    assert actions.cancel([queued]) == 0
    assert AuditEvent.objects.filter(action="queue.cancel").count() == 1


def test_actions_scoped_to_an_account_never_touch_another_accounts_mail(cast):
    globex = rcpt_of(queue_message(cast.globex_smtp, ["x@example.net"], sender="crm@globex.test"))

    assert actions.cancel([globex.pk], account=cast.acme) == 0
    globex.refresh_from_db()
    assert globex.status == "queued"


def test_a_recipient_being_delivered_right_now_is_not_cancelled(cast):
    m = queue_message(cast.acme_smtp, ["a@example.net"])
    queue.claim("busy-worker", 10)

    assert actions.cancel(m.recipients.all()) == 0
    assert rcpt_of(m).status == "queued"


@pytest.mark.django_db(transaction=True)
def test_the_worker_loop_stops_when_nothing_is_due_in_once_mode(cast, upstream):
    queue_message(cast.acme_smtp, ["a@example.net"])
    worker = DeliveryWorker(2, once=True, upstream=upstream.url())
    import asyncio

    stats = asyncio.run(worker.run())

    assert stats["delivered"] == 1
