"""The alert sender from failed deliveries (rows as the delivery worker leaves them) to
the email in Django's outbox."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from alerts import sample, sending
from alerts.models import Alert, AlertEvent, AlertRule, Notification
from alerts.rules import set_enabled, update_rule
from alerts.sample import send_test_alert
from alerts.sending import claim_next, deliver, process_rule, process_rules, run_once, send_lease
from relay.delivery.actions import cancel
from relay.models import Recipient, RecipientStatus
from tests.alerts.conftest import failed_message, later, make_rule

pytestmark = pytest.mark.django_db


def test_a_permanent_failure_sends_one_email_that_says_why_and_what_to_do(cast):
    make_rule(cast.acme)
    failed_message(
        cast.acme_smtp, ["ghost@example.net"], sender="shop@acme.test",
        subject="Your order #12", code=550, enhanced="5.1.1", text="User unknown", attempts=1,
    )
    assert run_once(now=later()) == 1

    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["ops@acme.test"]
    assert email.from_email == "alerts@smtpplus.example.com"
    assert email.subject == (
        "[SMTP+] 1 message could not be delivered (Acme) — recipient mailbox does not exist"
    )
    body = email.body
    for expected in (
        "Acme web shop", cast.acme_smtp.username, "shop@acme.test", "ghost@example.net",
        "Your order #12", "Attempts:        1", "550 5.1.1 User unknown",
        "this mailbox does not exist", "Check the recipient address for typos",
        "https://console.example.com/messages/",
    ):
        assert expected in body, expected
    html = email.alternatives[0][0]
    assert email.alternatives[0][1] == "text/html"
    assert "ghost@example.net" in html and "recipient mailbox does not exist" in html
    assert email.extra_headers["Auto-Submitted"] == "auto-generated"


def test_every_value_is_escaped_in_the_html_body_and_no_password_or_body_is_included(cast):
    make_rule(cast.acme)
    failed_message(
        cast.acme_smtp, ["x@example.net"], subject='<script>alert("x")</script> & <b>bold</b>',
        text="User <img src=x onerror=alert(1)> unknown",
    )
    run_once(now=later())

    email = mail.outbox[0]
    html = email.alternatives[0][0]
    assert "<script>" not in html and "<img src=x" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    # The text body shows the subject as it is (text is not HTML).
    assert '<script>alert("x")</script> & <b>bold</b>' in email.body
    for part in (email.subject, email.body, html):
        assert cast.acme_smtp_password not in part
        assert "Hello." not in part  # the message body


def test_a_burst_of_50_failures_is_coalesced_into_one_email(cast):
    make_rule(cast.acme)
    for i in range(50):
        failed_message(cast.acme_smtp, [f"user{i}@example.net"])

    # Within the coalescing window nothing goes out yet…
    assert run_once(now=timezone.now()) == 0
    assert mail.outbox == []
    # … then one email covers all fifty.
    assert run_once(now=later()) == 1
    assert run_once(now=later(300)) == 0

    assert len(mail.outbox) == 1
    assert mail.outbox[0].subject.startswith("[SMTP+] 50 messages could not be delivered (Acme)")
    body = mail.outbox[0].body
    assert all(f"user{i}@example.net" in body for i in range(50))
    alert = Alert.objects.get()
    assert alert.event_count == 50 and alert.events.count() == 50


def test_the_subject_names_the_main_reason_of_mixed_failures(cast):
    make_rule(cast.acme)
    failed_message(cast.acme_smtp, ["a@example.net", "b@example.net"])
    failed_message(cast.acme_smtp, ["c@example.org"], code=554, enhanced="5.7.1", text="Spam detected")
    run_once(now=later())
    assert mail.outbox[0].subject == (
        "[SMTP+] 3 messages could not be delivered (Acme) — recipient mailbox does not exist"
        " and 1 other reason"
    )
    assert "rejected as spam or by policy" in mail.outbox[0].body


def test_an_expired_delivery_says_it_gave_up_after_retries(cast):
    make_rule(cast.acme)
    failed_message(
        cast.acme_smtp, ["slow@example.net"], code=451, enhanced="4.4.1",
        text="Connection timed out", fail_reason="expired", attempts=17,
    )
    run_once(now=later())
    email = mail.outbox[0]
    assert email.subject.endswith("— gave up after retrying")
    assert "Attempts:        17" in email.body
    assert "gave up when the message reached its maximum time in the queue" in email.body


def test_each_failure_alerts_once_even_across_restarts(cast):
    make_rule(cast.acme)
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    run_once(now=later())
    # A restarted sender (same database, fresh process state) finds nothing new.
    run_once(now=later(200))
    run_once(now=later(400))
    assert len(mail.outbox) == 1
    assert AlertEvent.objects.count() == 1


def test_a_failure_committed_late_is_still_found(cast):
    """A row whose finished_at is older than the watermark (its transaction committed
    after the previous pass) is found thanks to the look-back."""
    make_rule(cast.acme)
    run_once(now=later(60))
    message = failed_message(cast.acme_smtp, ["late@example.net"])
    Recipient.objects.filter(message=message).update(finished_at=timezone.now() - timedelta(seconds=1))
    run_once(now=later(120))
    run_once(now=later(300))
    assert len(mail.outbox) == 1 and "late@example.net" in mail.outbox[0].body


def test_failures_from_before_the_rule_existed_are_not_alerted(cast):
    failed_message(cast.acme_smtp, ["old@example.net"])
    Recipient.objects.update(finished_at=timezone.now() - timedelta(hours=2))
    make_rule(cast.acme)
    run_once(now=later())
    assert mail.outbox == []


def test_a_rule_scoped_to_chosen_users_ignores_the_others(cast):
    from accounts.actions.smtp_users import create_smtp_user

    crm, _ = create_smtp_user(cast.acme, name="Acme CRM")
    make_rule(cast.acme, smtp_users=[crm])
    failed_message(cast.acme_smtp, ["shop-customer@example.net"])
    failed_message(crm, ["crm-contact@example.net"])
    run_once(now=later())
    assert len(mail.outbox) == 1
    assert "crm-contact@example.net" in mail.outbox[0].body
    assert "shop-customer@example.net" not in mail.outbox[0].body


def test_a_rule_never_sees_another_accounts_failures(cast):
    make_rule(cast.acme)
    failed_message(cast.globex_smtp, ["globex-customer@example.net"], sender="crm@globex.test")
    run_once(now=later())
    assert mail.outbox == []


def test_a_disabled_rule_sends_nothing_and_does_not_catch_up_when_enabled(cast):
    rule = make_rule(cast.acme)
    set_enabled(rule, False)
    failed_message(cast.acme_smtp, ["while-off@example.net"])
    run_once(now=later())
    assert mail.outbox == []

    set_enabled(rule, True)
    failed_message(cast.acme_smtp, ["after@example.net"])
    run_once(now=later())
    assert len(mail.outbox) == 1
    assert "after@example.net" in mail.outbox[0].body
    assert "while-off@example.net" not in mail.outbox[0].body


def test_an_hourly_digest_holds_events_until_the_hour_and_then_sends_exactly_those(cast):
    rule = make_rule(cast.acme, frequency="hourly")
    start = rule.last_alert_at
    failed_message(cast.acme_smtp, ["one@example.net"])
    run_once(now=start + timedelta(minutes=10))
    failed_message(cast.acme_smtp, ["two@example.net"])
    run_once(now=start + timedelta(minutes=30))
    assert mail.outbox == []

    run_once(now=start + timedelta(minutes=61))
    assert len(mail.outbox) == 1
    first = mail.outbox[0]
    assert first.subject.startswith("[SMTP+] 2 messages could not be delivered (Acme)")
    assert "Digest of the events since" in first.body
    assert "one@example.net" in first.body and "two@example.net" in first.body

    # The next digest has only what came after the first one.
    failed_message(cast.acme_smtp, ["three@example.net"], finished_at=start + timedelta(minutes=80))
    run_once(now=start + timedelta(minutes=90))
    assert len(mail.outbox) == 1
    run_once(now=start + timedelta(minutes=122))
    assert len(mail.outbox) == 2
    second = mail.outbox[1]
    assert "three@example.net" in second.body
    assert "one@example.net" not in second.body and "two@example.net" not in second.body


def test_a_daily_digest_waits_a_day(cast):
    rule = make_rule(cast.acme, frequency="daily")
    failed_message(cast.acme_smtp, ["one@example.net"])
    run_once(now=rule.last_alert_at + timedelta(hours=23))
    assert mail.outbox == []
    run_once(now=rule.last_alert_at + timedelta(hours=24, seconds=1))
    assert len(mail.outbox) == 1


def test_each_email_recipient_gets_its_own_notification(cast):
    make_rule(cast.acme, email_recipients="ops@acme.test\ncto@acme.test")
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    assert run_once(now=later()) == 2
    assert sorted(m.to[0] for m in mail.outbox) == ["cto@acme.test", "ops@acme.test"]
    assert set(Notification.objects.values_list("status", flat=True)) == {"sent"}


def test_a_failing_email_channel_is_retried_logged_and_never_raises_another_alert(cast, broken_email):
    settings = broken_email
    settings.ALERTS_RETRY_DELAYS = [0, 0]
    make_rule(cast.acme)
    failed_message(cast.acme_smtp, ["ghost@example.net"])

    assert run_once(now=later()) == 3  # the first attempt and two retries
    n = Notification.objects.get()
    assert n.status == "failed" and n.attempts == 3
    assert "could not send the email" in n.error
    # The failure stays a log line: no new event, alert or notification comes of it.
    for minutes in (5, 10):
        assert run_once(now=later(minutes * 60)) == 0
    assert (AlertEvent.objects.count(), Alert.objects.count(), Notification.objects.count()) == (1, 1, 1)


def test_a_notification_is_retried_later_with_backoff(cast, broken_email):
    settings = broken_email
    settings.ALERTS_RETRY_DELAYS = [60, 300]
    make_rule(cast.acme)
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    now = later()
    run_once(now=now)
    n = Notification.objects.get()
    assert (n.status, n.attempts) == ("retrying", 1)
    assert n.next_attempt_at == now + timedelta(seconds=60)
    assert run_once(now=now + timedelta(seconds=30)) == 0

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert run_once(now=now + timedelta(seconds=61)) == 1
    n.refresh_from_db()
    assert (n.status, n.attempts, n.error) == ("sent", 2, "")
    assert len(mail.outbox) == 1


def test_a_delivery_still_deferred_after_n_minutes_alerts_once(cast):
    make_rule(cast.acme, events=["delivery_delayed"], delay_minutes=30)
    message = failed_message(cast.acme_smtp, ["slow@example.net"], code=451, enhanced="4.7.1", text="Greylisted")
    Recipient.objects.filter(message=message).update(status=RecipientStatus.DEFERRED, finished_at=None, attempts=3)
    run_once(now=later(20 * 60))
    assert mail.outbox == []
    run_once(now=later(31 * 60))
    run_once(now=later(40 * 60))
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.subject == "[SMTP+] 1 message not delivered yet (Acme) — temporary failure at the recipient's server"
    assert "still in the queue after 30 minutes" in email.body
    assert "451 4.7.1 Greylisted" in email.body


def test_alerts_older_than_the_retention_are_pruned_with_their_events_and_notifications(cast, settings):
    from alerts.retention import prune

    settings.RETENTION_DAYS = 30
    make_rule(cast.acme)
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    run_once(now=later())
    assert prune(timezone.now() + timedelta(days=29)) == 0
    assert prune(timezone.now() + timedelta(days=31)) == 3  # event, alert, notification
    assert (AlertEvent.objects.count(), Alert.objects.count(), Notification.objects.count()) == (0, 0, 0)


def _due_notification(cast, since):
    make_rule(cast.acme)
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    process_rules(later())
    Notification.objects.update(next_attempt_at=since)


def test_a_notification_claimed_late_in_a_long_pass_is_leased_from_the_claim(cast):
    started = timezone.now() - timedelta(minutes=10)  # a pass that has been sending for ten minutes
    _due_notification(cast, started)
    before = timezone.now()
    n = claim_next(started)
    assert n is not None and n.lease_until >= before + send_lease()
    # Another process does not take it over while this one is still sending it.
    assert claim_next(timezone.now()) is None


def test_a_retry_is_scheduled_from_the_failed_attempt_not_from_the_start_of_the_pass(cast, broken_email):
    broken_email.ALERTS_RETRY_DELAYS = [60]
    started = timezone.now() - timedelta(minutes=10)
    _due_notification(cast, started)
    before = timezone.now()
    n = claim_next(started)
    assert n is not None and not deliver(n, started)
    n.refresh_from_db()
    assert n.status == "retrying" and n.next_attempt_at >= before + timedelta(seconds=60)


def test_an_alert_to_several_recipients_is_rendered_once(cast, monkeypatch):
    rendered = []

    def render(alert):
        rendered.append(alert.pk)
        return real_render(alert)

    real_render = sending.render_alert
    monkeypatch.setattr(sending, "render_alert", render)
    make_rule(cast.acme, email_recipients="ops@acme.test\ncto@acme.test\nnoc@acme.test")
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    assert run_once(now=later()) == 3
    assert len(mail.outbox) == 3 and len({m.body for m in mail.outbox}) == 1
    assert len(rendered) == 1


def test_a_digest_before_its_time_does_not_load_its_pending_events(cast):
    rule = make_rule(cast.acme, frequency="hourly")
    failed_message(cast.acme_smtp, ["one@example.net"])
    process_rule(rule.pk, rule.last_alert_at + timedelta(minutes=10))
    assert AlertEvent.objects.filter(rule=rule, alert__isnull=True).count() == 1
    with CaptureQueriesContext(connection) as queries:
        assert process_rule(rule.pk, rule.last_alert_at + timedelta(minutes=20)) is None
    event_data = connection.ops.quote_name("data")
    loaded = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and event_data in q["sql"]
              and "alerts_alertevent" in q["sql"]]
    assert loaded == []


def test_a_test_alert_that_cannot_be_built_leaves_no_event_to_go_out_as_a_real_alert(cast, monkeypatch):
    def broken_build(*args, **kwargs):
        raise RuntimeError("template missing")

    rule = make_rule(cast.acme)
    monkeypatch.setattr(sample, "build_alert", broken_build)
    with pytest.raises(RuntimeError):
        send_test_alert(rule)
    assert not AlertEvent.objects.filter(rule=rule).exists()
    assert run_once(now=later()) == 0 and mail.outbox == []


def test_a_test_alerts_sample_event_is_never_pending(cast):
    rule = make_rule(cast.acme)
    send_test_alert(rule)
    event = AlertEvent.objects.get(rule=rule)
    assert event.alert is not None and event.alert.is_test
    assert run_once(now=later()) == 0 and len(mail.outbox) == 1


@pytest.mark.parametrize(("events", "kinds"), [
    (["delivery_failed", "delivery_expired"], {"delivery_failed", "delivery_expired"}),
    (["delivery_failed"], {"delivery_failed"}),
    (["delivery_expired"], {"delivery_expired"}),
])
def test_a_rule_records_the_failures_and_expiries_it_asks_for_and_never_cancellations(cast, events, kinds):
    rule = make_rule(cast.acme, events=events)
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    failed_message(cast.acme_smtp, ["slow@example.net"], code=None, fail_reason="expired")
    queued = failed_message(cast.acme_smtp, ["withdrawn@example.net"])
    Recipient.objects.filter(message=queued).update(status=RecipientStatus.QUEUED, finished_at=None)
    assert cancel(Recipient.objects.filter(message=queued), account=cast.acme) == 1
    process_rule(rule.pk, later())
    recorded = {e.data["recipient"]: e.kind for e in AlertEvent.objects.filter(rule=rule)}
    expected = {"ghost@example.net": "delivery_failed", "slow@example.net": "delivery_expired"}
    assert recorded == {a: k for a, k in expected.items() if k in kinds}


def test_a_digest_built_before_its_rule_changed_still_reads_as_a_digest(cast):
    rule = make_rule(cast.acme, frequency="hourly")
    failed_message(cast.acme_smtp, ["one@example.net"])
    moment = rule.last_alert_at + timedelta(minutes=61)
    assert process_rule(rule.pk, moment) is not None
    AlertRule.objects.filter(pk=rule.pk).update(frequency="as_needed")
    assert sending.send_due(moment) == 1
    assert "Digest of the events since" in mail.outbox[0].body


@pytest.mark.parametrize("change", [
    lambda rule: update_rule(rule, {"name": "Renamed"}),
    lambda rule: set_enabled(rule, False),
])
def test_changing_a_rule_keeps_the_watermark_the_sender_advanced_meanwhile(cast, change):
    rule = make_rule(cast.acme)
    loaded = AlertRule.objects.get(pk=rule.pk)  # as the console loaded it, before the pass below
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    run_once(now=later())
    advanced = AlertRule.objects.values_list("collected_until", "last_alert_at").get(pk=rule.pk)
    assert advanced[0] != loaded.collected_until and advanced[1] != loaded.last_alert_at
    change(loaded)
    assert AlertRule.objects.values_list("collected_until", "last_alert_at").get(pk=rule.pk) == advanced
