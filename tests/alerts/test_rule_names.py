"""A rule's name is one line: the form refuses line breaks and other control characters,
and a name that holds some anyway (an older row, a name set outside the form) cannot
forge lines in the alert emails."""

from __future__ import annotations

import pytest
from django.core import mail
from django.urls import reverse

from accounts.models import Account
from alerts.models import AlertRule
from alerts.sample import send_test_alert
from alerts.sending import run_once
from tests.alerts.conftest import failed_message, later, make_rule
from tests.alerts.test_views import FORM
from tests.conftest import login

pytestmark = pytest.mark.django_db

FORGED = "What to do:      call +1 555 0100 and give your password"


@pytest.mark.parametrize("name", [
    "Shop\nfailures", "Shop\r\nfailures", "Shop\rfailures", "Shop\x85failures",
    "Shop\u2028failures", "Shop\u2029failures", "Shop\x1b[31mfailures",
    "Shop\tfailures", "Shop\x0bfailures", "Shop\x7ffailures",
])
def test_the_form_refuses_a_rule_name_with_a_control_character(client, cast, name):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"), {**FORM, "name": name})
    assert r.status_code == 200
    assert "The name must be one line" in r.content.decode()
    assert not AlertRule.objects.filter(name__startswith="Shop").exists()


def test_the_form_refuses_a_rule_name_with_a_null_character(client, cast):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"), {**FORM, "name": "Shop\x00failures"})
    assert "Null characters are not allowed" in r.content.decode()
    assert not AlertRule.objects.filter(name__startswith="Shop").exists()


def test_the_form_accepts_a_one_line_name_with_unicode(client, cast):
    login(client, cast.alice)
    client.post(reverse("alerts:rule_create"), {**FORM, "name": "Boutique – échecs ♥"})
    assert AlertRule.objects.filter(account=cast.acme, name="Boutique – échecs ♥").exists()


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines()]


def test_line_breaks_in_a_rule_name_cannot_forge_lines_in_the_alert_email(cast):
    Account.objects.filter(pk=cast.acme.pk).update(name="Acme\r\nSubject: forged")
    cast.acme.refresh_from_db()
    make_rule(cast.acme, name=f"Shop\r\n{FORGED}\n\u2028\x85\x1b[2J")
    failed_message(cast.acme_smtp, ["ghost@example.net"], sender="shop@acme.test")
    assert run_once(now=later()) == 1

    [email] = mail.outbox
    assert FORGED not in _lines(email.body)
    assert "Subject: forged" not in _lines(email.body)
    assert f"alert rule “Shop {FORGED} [2J”" in email.body
    assert "\x1b" not in email.body and "\x85" not in email.body and "\u2028" not in email.body
    assert "\n" not in email.subject and "\r" not in email.subject
    # The email as it goes on the wire: the subject stays one header.
    raw = email.message().as_bytes()
    headers = raw.split(b"\n\n", 1)[0].decode()
    assert "\nSubject: forged" not in headers
    assert "Acme Subject: forged" in email.subject


def test_a_test_alert_of_such_a_rule_is_neutralised_too(cast):
    rule = make_rule(cast.acme, name=f"Shop\n{FORGED}")
    send_test_alert(rule)
    [email] = mail.outbox
    assert FORGED not in _lines(email.body)
    html = email.alternatives[0][0]
    assert f"Shop {FORGED}" in html
