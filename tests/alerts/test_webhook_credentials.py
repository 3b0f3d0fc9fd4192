"""A webhook URL may carry a password (https://user:password@host/); it is used to send
and shown to no one: not on the pages, not in the audit log, not in messages or logs."""

from __future__ import annotations

import json
import logging
import re
from html import unescape

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from accounts.models import AuditEvent
from alerts.models import AlertRule, Notification
from alerts.redaction import redacted_url
from tests.alerts.conftest import closed_port
from tests.alerts.test_views import FORM
from tests.conftest import PASSWORD, login

pytestmark = pytest.mark.django_db

HOOK_PASSWORD = "hunter2-webhook-pass"

@pytest.fixture
def url(settings) -> str:
    settings.ALERTS_WEBHOOK_ALLOW_PRIVATE = True
    return f"http://alerts:{HOOK_PASSWORD}@127.0.0.1:{closed_port()}/hooks/smtpplus"


def test_the_password_of_a_webhook_url_is_redacted():
    url = f"https://alerts:{HOOK_PASSWORD}@hooks.example.com:8443/x"
    assert redacted_url(url) == "https://alerts:********@hooks.example.com:8443/x"
    assert redacted_url("https://token@hooks.example.com/x") == "https://token@hooks.example.com/x"
    assert redacted_url("https://hooks.example.com/x?a=b") == "https://hooks.example.com/x?a=b"


def test_the_webhook_password_appears_nowhere_in_the_console(client, cast, url, caplog):
    login(client, cast.alice)
    client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": url})
    rule = AlertRule.objects.get(name="Shop failures")
    assert rule.webhook_url == url  # kept whole for sending

    with caplog.at_level(logging.INFO):
        r = client.post(reverse("alerts:rule_test", args=[rule.pk]), follow=True)
    assert Notification.objects.filter(alert__rule=rule, channel="webhook").exists()
    pages = [r] + [client.get(url) for url in (
        reverse("alerts:rules"), reverse("alerts:rule_detail", args=[rule.pk]),
        reverse("alerts:log"), reverse("accounts:audit"),
        *[reverse("alerts:notification_detail", args=[n.pk])
          for n in Notification.objects.filter(alert__rule=rule)],
    )]
    for page in pages:
        assert page.status_code == 200
        assert HOOK_PASSWORD not in page.content.decode()
    assert "alerts:********@127.0.0.1" in pages[2].content.decode()
    audit = json.dumps(list(AuditEvent.objects.filter(account=cast.acme).values_list("details", flat=True)))
    assert HOOK_PASSWORD not in audit
    assert HOOK_PASSWORD not in caplog.text


def _edit_form(page: str) -> dict[str, object]:
    """The edit form as the browser would send it back unchanged."""
    value = re.search(r'<input[^>]*name="webhook_url"[^>]*value="([^"]*)"', page)
    assert value is not None
    return {**FORM, "webhook_url": unescape(value.group(1))}


def test_the_edit_page_shows_the_webhook_password_masked_and_saving_it_keeps_the_password(client, cast, url):
    login(client, cast.alice)
    client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": url})
    rule = AlertRule.objects.get(name="Shop failures")
    secret = rule.webhook_secret_encrypted

    page = client.get(reverse("alerts:rule_edit", args=[rule.pk])).content.decode()
    assert HOOK_PASSWORD not in page
    assert rule.webhook_display in page

    r = client.post(reverse("alerts:rule_edit", args=[rule.pk]), {**_edit_form(page), "name": "Renamed"})
    assert r.status_code == 302
    rule.refresh_from_db()
    assert (rule.name, rule.webhook_url) == ("Renamed", url)
    assert rule.webhook_secret_encrypted == secret


def test_a_new_webhook_url_typed_on_the_edit_page_replaces_the_stored_one(client, cast, url):
    login(client, cast.alice)
    client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": url})
    rule = AlertRule.objects.get(name="Shop failures")
    other = url.replace(HOOK_PASSWORD, "a-new-password")
    client.post(reverse("alerts:rule_edit", args=[rule.pk]), {**FORM, "webhook_url": other})
    rule.refresh_from_db()
    assert rule.webhook_url == other


def test_the_django_admin_shows_the_webhook_password_masked(client, cast, url):
    login(client, cast.alice)
    client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": url})
    rule = AlertRule.objects.get(name="Shop failures")
    client.post(reverse("alerts:rule_test", args=[rule.pk]))
    n = Notification.objects.get(alert__rule=rule, channel="webhook")
    login(client, User.objects.create_superuser("op@example.test", "op@example.test", PASSWORD))
    pages = [client.get(reverse(name, args=args)) for name, args in (
        ("admin:alerts_alertrule_changelist", []), ("admin:alerts_alertrule_change", [rule.pk]),
        ("admin:alerts_notification_changelist", []), ("admin:alerts_notification_change", [n.pk]),
    )]
    for page in pages:
        assert page.status_code == 200
        assert HOOK_PASSWORD not in page.content.decode()
    assert "alerts:********@127.0.0.1" in pages[1].content.decode()
    assert "alerts:********@127.0.0.1" in pages[2].content.decode()
