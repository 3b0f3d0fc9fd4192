"""Alerts from the relay's own rejections (relay events), with the seed's advice."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from accounts.actions.smtp_users import create_smtp_user
from alerts.sending import run_once
from tests.alerts.conftest import later, make_rule, relay_event

pytestmark = pytest.mark.django_db


def test_an_unauthorized_sender_alert_says_to_authorize_the_second_level_domain_or_the_address(cast):
    make_rule(cast.acme, events=["sender_rejected"])
    relay_event(
        cast.acme_smtp, "sender_rejected", address="news@www.acme-shop.test",
        reply="550 5.7.1 Sender <news@www.acme-shop.test> is not authorized",
    )
    run_once(now=later())
    email = mail.outbox[0]
    assert email.subject == "[SMTP+] 1 sender refused as not authorized (Acme) — sender not authorized"
    body = email.body
    assert "authorize the domain acme-shop.test" in body
    assert "not www.acme-shop.test" in body
    assert "authorize only the address news@www.acme-shop.test" in body
    assert "550 5.7.1 Sender <news@www.acme-shop.test> is not authorized" in body
    assert "https://console.example.com/events/?" in body


def test_a_rejected_sender_that_keeps_retrying_alerts_once_an_hour(cast):
    make_rule(cast.acme, events=["sender_rejected"])
    for _ in range(5):
        relay_event(cast.acme_smtp, "from_rejected", address="boss@other.test", count=3)
    run_once(now=later())
    run_once(now=later(300))
    assert len(mail.outbox) == 1
    assert "Count:           15" in mail.outbox[0].body
    assert "From: header address boss@other.test" in mail.outbox[0].body


def test_failed_logins_above_the_threshold_say_to_retrieve_and_re_enter_the_credentials(cast):
    make_rule(cast.acme, events=["login_failures"], login_threshold=5, login_window_minutes=10)
    relay_event(cast.acme_smtp, "auth_failed", reason="wrong password", count=4)
    run_once(now=later())
    assert mail.outbox == []  # 4 < 5

    relay_event(cast.acme_smtp, "auth_failed", reason="wrong password", count=2)
    run_once(now=later(120))
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert "6 failed logins for the SMTP+ user Acme web shop within 10 minutes" in body
    assert "retrieve the SMTP+ credentials for that user, and re-enter them" in body

    # Still failing a minute later: no second alert within the window.
    relay_event(cast.acme_smtp, "auth_failed", reason="wrong password", count=6)
    run_once(now=later(180))
    assert len(mail.outbox) == 1


def test_failed_logins_from_one_ip_across_users_are_reported_for_the_ip(cast):
    crm, _ = create_smtp_user(cast.acme, name="Acme CRM")
    make_rule(cast.acme, events=["login_failures"], login_threshold=6)
    relay_event(cast.acme_smtp, "auth_failed", client_ip="203.0.113.7", count=3)
    relay_event(crm, "auth_failed", client_ip="203.0.113.7", count=3)
    run_once(now=later())
    body = mail.outbox[0].body
    assert "6 failed logins from 203.0.113.7 within 10 minutes" in body


def test_a_user_over_its_hourly_limit_alerts_once_per_hour(cast):
    make_rule(cast.acme, events=["rate_limited"])
    relay_event(cast.acme_smtp, "rate_limited", reply="451 4.7.1 Sending rate limit exceeded, try again later")
    relay_event(cast.acme_smtp, "rate_limited", reply="451 4.7.1 Sending rate limit exceeded, try again later")
    run_once(now=later())
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.subject == "[SMTP+] hourly limit reached (1 SMTP+ user) (Acme) — hourly sending limit reached"
    assert "Raise or remove the hourly limit" in email.body


def test_events_of_unknown_users_or_other_accounts_do_not_alert(cast):
    make_rule(cast.acme, events=["sender_rejected", "login_failures"], login_threshold=1)
    relay_event(None, "auth_failed", username="smtp-nobody", count=50)
    relay_event(cast.globex_smtp, "sender_rejected", address="x@evil.test")
    relay_event(cast.globex_smtp, "auth_failed", count=50)
    run_once(now=later())
    assert mail.outbox == []


def test_old_failed_logins_outside_the_window_do_not_count(cast):
    rule = make_rule(cast.acme, events=["login_failures"], login_threshold=5, login_window_minutes=10)
    rule.watch_since = timezone.now() - timedelta(hours=1)
    rule.save()
    old = timezone.now() - timedelta(minutes=30)
    relay_event(cast.acme_smtp, "auth_failed", count=9, created=old, last_seen=old)
    run_once(now=timezone.now() + timedelta(seconds=60))
    assert mail.outbox == []


def test_a_recipient_refused_as_suppressed_alerts_with_how_to_lift_it(cast):
    make_rule(cast.acme, events=["recipient_suppressed"])
    relay_event(
        cast.acme_smtp, "suppressed", address="gone@example.net",
        reply="550 5.1.1 <gone@example.net>: recipient is on this account's suppression list",
    )
    run_once(now=later())
    email = mail.outbox[0]
    assert email.subject.startswith("[SMTP+] 1 recipient refused: on the suppression list (Acme)")
    assert "remove it from the suppression list in the console" in email.body
    assert "gone@example.net" in email.body
