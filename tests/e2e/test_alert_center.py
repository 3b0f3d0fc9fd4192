"""In a real browser: create an alert rule, send a test alert, find it in the log."""

import pytest
from django.core import mail

from alerts.models import AlertRule, Notification
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_creates_a_rule_sends_a_test_alert_and_sees_it_in_the_log(page, cast):
    log_in(page, "bob@acme.test", PASSWORD)
    page.click("nav >> text=Alert center")
    # The account's default rule is listed.
    assert "Delivery failures" in page.inner_text("main")
    page.click("text=New alert rule")

    page.fill("#id_name", "Web shop problems")
    page.check("input[name=events][value=delivery_delayed]")
    page.fill("#id_delay_minutes", "45")
    page.check("input[name=all_users][value='0']")
    page.check(f"input[name=smtp_users][value='{cast.acme_smtp.pk}']")
    page.check("input[name=frequency][value=hourly]")
    page.fill("#id_email_recipients", "ops@acme.test, oncall@")
    page.click("button:has-text('Create rule')")
    assert "“oncall@” is not a valid email address." in page.inner_text("main")

    page.fill("#id_email_recipients", "ops@acme.test")
    page.click("button:has-text('Create rule')")
    page.wait_for_url("**/alerts/*/")
    rule = AlertRule.objects.get(account=cast.acme, name="Web shop problems")
    assert rule.frequency == "hourly" and rule.delay_minutes == 45
    assert list(rule.smtp_users.all()) == [cast.acme_smtp]

    page.click("button:has-text('Send test alert')")
    assert "Test alert sent to ops@acme.test." in page.inner_text(".flash")
    [email] = mail.outbox
    assert email.to == ["ops@acme.test"]
    assert email.subject.startswith("[SMTP+] Test alert:")

    page.click("text=Notifications log")
    row = page.locator("table tbody tr").first
    assert "Web shop problems" in row.inner_text()
    assert "ops@acme.test" in row.inner_text() and "sent" in row.inner_text()
    row.locator("a").first.click()
    main = page.inner_text("main")
    assert "no.such.person@example.net" in main
    assert "Recipient mailbox does not exist." in main
    assert Notification.objects.get().status == "sent"


def test_threshold_fields_show_only_with_their_event_ticked(page, cast):
    log_in(page, "bob@acme.test", PASSWORD)
    page.goto("/alerts/new/")
    delay, threshold, window = "#id_delay_minutes", "#id_login_threshold", "#id_login_window_minutes"
    assert not page.is_visible(delay) and not page.is_visible(threshold)
    assert not page.is_visible(window)
    page.check("input[name=events][value=delivery_delayed]")
    assert page.is_visible(delay) and not page.is_visible(threshold)
    page.check("input[name=events][value=login_failures]")
    assert page.is_visible(threshold) and page.is_visible(window)
    page.uncheck("input[name=events][value=delivery_delayed]")
    assert not page.is_visible(delay)
