"""POSTs on one's own objects whose form data names another account's rows: the foreign
id is refused (404 or a form error) and the other account's rows stay as they were.

tests/test_tenant_isolation.py covers ids in URLs; this covers ids in form fields.
"""

from __future__ import annotations

import pytest
from django.urls import reverse

from alerts.models import AlertRule
from relay.models import Recipient
from tests.alerts.conftest import make_rule
from tests.alerts.test_views import FORM as RULE_FORM
from tests.conftest import PASSWORD, login
from tests.fake_upstream import queue_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def messages(cast):
    mine = queue_message(cast.acme_smtp, ["a@example.net"])
    theirs = queue_message(cast.globex_smtp, ["b@example.net"], sender="crm@globex.test")
    return mine, theirs, theirs.recipients.get()


def test_cancel_with_another_accounts_recipient_is_not_found(client, cast, messages):
    mine, _, foreign = messages
    login(client, cast.alice)
    r = client.post(reverse("relay:message_cancel", args=[mine.pk]), {"recipient": foreign.pk})
    assert r.status_code == 404
    assert Recipient.objects.get(pk=foreign.pk).status == "queued"
    assert mine.recipients.get().status == "queued"


@pytest.mark.parametrize("action", ["cancel", "retry"])
def test_bulk_actions_filtered_by_another_accounts_user_touch_nothing(client, cast, messages, action):
    mine, _, foreign = messages
    login(client, cast.alice)
    r = client.post(reverse("relay:messages_bulk"), {"action": action, "user": cast.globex_smtp.pk})
    assert r.status_code == 302
    assert Recipient.objects.get(pk=foreign.pk).status == "queued"
    assert mine.recipients.get().status == "queued"


def test_bulk_cancel_without_filters_stays_in_the_current_account(client, cast, messages):
    mine, _, foreign = messages
    login(client, cast.alice)
    client.post(reverse("relay:messages_bulk"), {"action": "cancel"})
    assert mine.recipients.get().status == "cancelled"
    assert Recipient.objects.get(pk=foreign.pk).status == "queued"


def test_a_new_rule_cannot_watch_another_accounts_smtp_user(client, cast):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"),
                    {**RULE_FORM, "all_users": "0", "smtp_users": [cast.globex_smtp.pk]})
    assert r.status_code == 200
    assert not AlertRule.objects.filter(name=RULE_FORM["name"]).exists()
    assert "Globex CRM" not in r.content.decode()


def test_an_edited_rule_cannot_watch_another_accounts_smtp_user(client, cast):
    rule = make_rule(cast.acme, smtp_users=[cast.acme_smtp])
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_edit", args=[rule.pk]),
                    {**RULE_FORM, "all_users": "0",
                     "smtp_users": [cast.acme_smtp.pk, cast.globex_smtp.pk]})
    assert r.status_code == 200
    assert list(rule.smtp_users.all()) == [cast.acme_smtp]


def test_the_rule_form_offers_only_the_accounts_own_smtp_users(client, cast):
    login(client, cast.alice)
    html = client.get(reverse("alerts:rule_create")).content.decode()
    assert "Acme web shop" in html and "Globex CRM" not in html


def test_switching_to_an_account_one_is_not_a_member_of_is_not_found(client, cast):
    login(client, cast.alice)
    assert client.post(reverse("accounts:switch"), {"account": cast.globex.slug}).status_code == 404
    assert "Globex" not in client.get(reverse("dashboard")).content.decode()


def test_a_reauthentication_cannot_be_replayed_on_another_accounts_user(client, cast):
    login(client, cast.alice)
    target = reverse("accounts:smtpuser_reveal", args=[cast.globex_smtp.pk])
    page = client.get(reverse("accounts:confirm_password"), {"next": target})
    assert cast.globex_smtp.username not in page.content.decode()
    r = client.post(reverse("accounts:confirm_password"), {"password": PASSWORD, "next": target},
                    follow=True)
    assert r.status_code == 404
    assert cast.globex_smtp_password not in r.content.decode()


def test_the_confirm_page_never_redirects_off_site(client, cast):
    login(client, cast.alice)
    for evil in ("https://evil.example/", "//evil.example/x", "/\\evil.example"):
        r = client.post(reverse("accounts:confirm_password"), {"password": PASSWORD, "next": evil})
        assert r.status_code == 303
        assert "evil" not in r["Location"]
