"""Alert center pages: rules, test alerts, webhook secret, notifications log."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import AuditEvent
from alerts.models import AlertRule, Notification
from alerts.sending import run_once
from tests.alerts.conftest import failed_message, later, make_rule
from tests.conftest import login

pytestmark = pytest.mark.django_db

FORM = {
    "name": "Shop failures",
    "enabled": "on",
    "events": ["delivery_failed", "delivery_expired"],
    "delay_minutes": "60",
    "login_threshold": "10",
    "login_window_minutes": "10",
    "all_users": "1",
    "frequency": "as_needed",
    "email_recipients": "ops@acme.test; cto@acme.test",
    "webhook_url": "",
}


def test_an_admin_creates_a_rule_and_it_is_audited(client, cast):
    login(client, cast.bob)
    r = client.post(reverse("alerts:rule_create"), FORM)
    rule = AlertRule.objects.get(name="Shop failures")
    assert r.status_code == 302 and r.url == reverse("alerts:rule_detail", args=[rule.pk])
    assert rule.account == cast.acme
    assert rule.email_list == ["ops@acme.test", "cto@acme.test"]
    assert rule.events == ["delivery_failed", "delivery_expired"]
    event = AuditEvent.objects.get(action="alert_rule.create")
    assert event.actor == cast.bob and event.account == cast.acme


def test_the_form_names_each_bad_email_recipient(client, cast):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"), {**FORM, "email_recipients": "ops@acme.test, bob@, <x>@y"})
    assert r.status_code == 200
    assert "“bob@”, “&lt;x&gt;@y” are not valid email addresses." in r.content.decode()
    assert not AlertRule.objects.filter(name="Shop failures").exists()


@pytest.mark.parametrize("url", ["ftp://hooks.example.com/x", "javascript:alert(1)", "file:///etc/passwd"])
def test_the_webhook_url_must_be_http_or_https(client, cast, url):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": url})
    assert r.status_code == 200
    assert "must start with http:// or https://" in r.content.decode()


def test_a_rule_needs_a_channel(client, cast):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"), {**FORM, "email_recipients": ""})
    assert "Give at least one email recipient or a webhook URL." in r.content.decode()


def test_a_webhook_secret_is_shown_once_at_creation_and_can_be_reset(client, cast):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": "https://hooks.example.com/a"},
                    follow=True)
    assert r.status_code == 200 and r["Cache-Control"] == "no-store"
    rule = AlertRule.objects.get(name="Shop failures")
    secret = rule.get_webhook_secret()
    assert secret in r.content.decode()
    # Not on the rule's page afterwards.
    assert secret not in client.get(reverse("alerts:rule_detail", args=[rule.pk])).content.decode()

    r = client.post(reverse("alerts:rule_reset_secret", args=[rule.pk]), follow=True)
    rule.refresh_from_db()
    assert rule.get_webhook_secret() != secret
    assert rule.get_webhook_secret() in r.content.decode()
    assert AuditEvent.objects.filter(action="alert_rule.reset_secret", account=cast.acme).exists()


def test_the_list_shows_enabled_state_last_sent_and_last_error(client, cast, settings):
    ok = make_rule(cast.acme, name="Works")
    broken = make_rule(cast.acme, name="Broken", email_recipients="nobody@acme.test")
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    run_once(now=later())
    Notification.objects.filter(alert__rule=broken).update(status="failed", error="the mail server answered 550 <no such user>")
    login(client, cast.victor)
    html = client.get(reverse("alerts:rules")).content.decode()
    assert "Works" in html and "Broken" in html and "enabled" in html
    assert "the mail server answered 550 &lt;no such user&gt;" in html
    assert ok.pk and "never" not in html.split("Works")[1].split("</tr>")[0]
    assert "no event, so no alert can be sent" in html  # the seed's closed-port note


def test_disable_enable_and_delete_are_post_only_and_audited(client, cast):
    rule = make_rule(cast.acme)
    login(client, cast.bob)
    assert client.get(reverse("alerts:rule_toggle", args=[rule.pk])).status_code == 405
    client.post(reverse("alerts:rule_toggle", args=[rule.pk]), {"enabled": "0"})
    rule.refresh_from_db()
    assert not rule.enabled
    client.post(reverse("alerts:rule_toggle", args=[rule.pk]), {"enabled": "1"})
    rule.refresh_from_db()
    assert rule.enabled
    client.get(reverse("alerts:rule_delete", args=[rule.pk]))
    assert AlertRule.objects.filter(pk=rule.pk).exists()
    client.post(reverse("alerts:rule_delete", args=[rule.pk]))
    assert not AlertRule.objects.filter(pk=rule.pk).exists()
    actions = set(AuditEvent.objects.filter(account=cast.acme).values_list("action", flat=True))
    assert {"alert_rule.disable", "alert_rule.enable", "alert_rule.delete"} <= actions


def test_editing_a_rule_changes_it(client, cast):
    rule = make_rule(cast.acme)
    login(client, cast.alice)
    form = {**FORM, "name": "Renamed", "frequency": "daily", "all_users": "0",
            "smtp_users": [str(cast.acme_smtp.pk)]}
    r = client.post(reverse("alerts:rule_edit", args=[rule.pk]), form)
    assert r.status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.frequency, rule.all_users) == ("Renamed", "daily", False)
    assert list(rule.smtp_users.all()) == [cast.acme_smtp]
    assert AuditEvent.objects.filter(action="alert_rule.update").exists()


def test_a_rule_cannot_be_scoped_to_another_accounts_user(client, cast):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"), {**FORM, "all_users": "0", "smtp_users": [str(cast.globex_smtp.pk)]})
    assert r.status_code == 200
    assert not AlertRule.objects.filter(name="Shop failures").exists()


def test_send_test_alert_sends_a_sample_at_once_and_logs_it(client, cast):
    rule = make_rule(cast.acme)
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_test", args=[rule.pk]), follow=True)
    assert "Test alert sent to ops@acme.test." in r.content.decode()
    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.subject.startswith("[SMTP+] Test alert: 1 message could not be delivered (Acme)")
    assert "THIS IS A TEST ALERT" in email.body
    assert "550 5.1.1" in email.body and "this mailbox does not exist" in email.body
    n = Notification.objects.get()
    assert n.alert.is_test and n.status == "sent"
    log = client.get(reverse("alerts:log")).content.decode()
    assert "ops@acme.test" in log and "test" in log
    detail = client.get(reverse("alerts:notification_detail", args=[n.pk])).content.decode()
    assert "no.such.person@example.net" in detail


def test_a_failing_test_alert_shows_the_error_at_once(client, cast, broken_email):
    rule = make_rule(cast.acme)
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_test", args=[rule.pk]), follow=True)
    assert "Test alert to ops@acme.test failed: could not send the email" in r.content.decode()
    n = Notification.objects.get()
    assert (n.status, n.attempts) == ("failed", 1)


def test_the_log_shows_every_notification_with_its_events(client, cast):
    make_rule(cast.acme)
    failed_message(cast.acme_smtp, ["ghost@example.net"], subject="<b>Invoice</b>")
    run_once(now=later())
    n = Notification.objects.get()
    login(client, cast.victor)
    log = client.get(reverse("alerts:log")).content.decode()
    assert "ops@acme.test" in log and "sent" in log
    detail = client.get(reverse("alerts:notification_detail", args=[n.pk])).content.decode()
    assert "ghost@example.net" in detail and "&lt;b&gt;Invoice&lt;/b&gt;" in detail
    assert "recipient mailbox does not exist" in detail.lower()


def test_viewers_read_but_cannot_change_anything(client, cast):
    rule = make_rule(cast.acme)
    login(client, cast.victor)
    assert client.get(reverse("alerts:rules")).status_code == 200
    assert client.get(reverse("alerts:rule_detail", args=[rule.pk])).status_code == 200
    page = client.get(reverse("alerts:rule_detail", args=[rule.pk])).content.decode()
    assert "Send test alert" not in page
    assert client.get(reverse("alerts:rule_create")).status_code == 403
    assert client.post(reverse("alerts:rule_create"), FORM).status_code == 403
    assert client.post(reverse("alerts:rule_edit", args=[rule.pk]), FORM).status_code == 403
    assert client.post(reverse("alerts:rule_toggle", args=[rule.pk]), {"enabled": "0"}).status_code == 403
    assert client.post(reverse("alerts:rule_test", args=[rule.pk])).status_code == 403
    assert client.post(reverse("alerts:rule_delete", args=[rule.pk])).status_code == 403
    rule.refresh_from_db()
    assert rule.enabled and mail.outbox == []


def test_another_accounts_rules_and_notifications_are_404(client, cast):
    rule = make_rule(cast.acme)
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    run_once(now=later())
    n = Notification.objects.get()
    login(client, cast.charlie)
    for name, args in [("alerts:rule_detail", [rule.pk]), ("alerts:rule_edit", [rule.pk]),
                       ("alerts:rule_delete", [rule.pk]), ("alerts:notification_detail", [n.pk])]:
        assert client.get(reverse(name, args=args)).status_code == 404
    for name in ("alerts:rule_toggle", "alerts:rule_test", "alerts:rule_reset_secret", "alerts:rule_delete"):
        assert client.post(reverse(name, args=[rule.pk])).status_code == 404
    assert "ops@acme.test" not in client.get(reverse("alerts:log")).content.decode()
    assert "Failures" not in client.get(reverse("alerts:rules")).content.decode()


def test_pages_need_a_login(client, cast):
    r = client.get(reverse("alerts:rules"))
    assert r.status_code == 302 and "/login/" in r.url


def test_deleting_a_rule_keeps_its_notifications_and_their_events_in_the_log(client, cast):
    rule = make_rule(cast.acme)
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    run_once(now=later())
    n = Notification.objects.get()
    login(client, cast.alice)
    client.post(reverse("alerts:rule_delete", args=[rule.pk]))
    detail = client.get(reverse("alerts:notification_detail", args=[n.pk])).content.decode()
    assert "(deleted)" in detail and "ghost@example.net" in detail


def test_a_rule_mailing_admin_at_localhost_asks_for_a_real_address(client, cast):
    rule = make_rule(cast.acme, name="Defaults", email_recipients="admin@localhost\nops@acme.test")
    login(client, cast.alice)
    for page in (reverse("alerts:rules"), reverse("alerts:rule_detail", args=[rule.pk])):
        html = client.get(page).content.decode()
        assert "Alerts of “Defaults” go to admin@localhost, where nobody reads mail" in html
        assert "Give a real address" in html and reverse("alerts:rule_edit", args=[rule.pk]) in html


def test_a_rule_with_real_addresses_has_no_such_notice(client, cast):
    rule = make_rule(cast.acme, name="Fine", email_recipients="ops@acme.test")
    login(client, cast.alice)
    assert "where nobody reads mail" not in client.get(
        reverse("alerts:rule_detail", args=[rule.pk])).content.decode()


def test_a_test_alert_updates_last_sent(client, cast):
    rule = make_rule(cast.acme, name="Tested")
    login(client, cast.alice)
    detail = reverse("alerts:rule_detail", args=[rule.pk])
    never = '<dt>Last sent</dt><dd><span class="muted">never</span>'
    assert never in client.get(detail).content.decode()
    client.post(reverse("alerts:rule_test", args=[rule.pk]))
    html = client.get(detail).content.decode()
    assert never not in html
    assert '<span class="muted">(test)</span></dd>' in html
    row = client.get(reverse("alerts:rules")).content.decode().split(">Tested</a>")[1].split("</tr>")[0]
    assert '<span class="muted">(test)</span>' in row and "never" not in row


@pytest.mark.parametrize("url", ["http://127.0.0.1:9000/hook", "http://localhost/hook"])
def test_a_private_webhook_is_refused_naming_the_setting_that_allows_it(client, cast, url):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": url})
    assert "ALERTS_WEBHOOK_ALLOW_PRIVATE=true" in r.content.decode()
    assert not AlertRule.objects.filter(name=FORM["name"]).exists()
