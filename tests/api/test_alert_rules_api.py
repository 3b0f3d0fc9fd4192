"""/api/v1/alert-rules: list and show the account's rules, create, replace and delete
them with the console's validation; secrets never listed; another account's is a 404."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from alerts.models import AlertRule
from tests.alerts.conftest import make_rule

pytestmark = pytest.mark.django_db

RULE = {"name": "Bounces", "events": ["delivery_failed"], "email_recipients": ["ops@acme.test"]}


def test_it_lists_and_shows_the_accounts_rules(acme_reader, cast):
    rule = make_rule(cast.acme, name="Failures")
    make_rule(cast.globex, name="Globex failures", email_recipients="ops@globex.test")
    names = [r["name"] for r in acme_reader.get("/alert-rules").json()]
    assert "Failures" in names and "Globex failures" not in names
    shown = acme_reader.get(f"/alert-rules/{rule.pk}").json()
    assert shown["events"] == ["delivery_failed", "delivery_expired"]
    assert shown["email_recipients"] == ["ops@acme.test"]


def test_it_creates_a_rule_audited_with_the_key_name(acme_api, cast):
    answer = acme_api.post("/alert-rules", RULE)
    assert answer.status_code == 201
    rule = AlertRule.objects.get(pk=answer.json()["id"])
    assert rule.account == cast.acme and rule.events == ["delivery_failed"]
    assert answer.json()["webhook_secret"] is None
    assert AuditEvent.objects.get(action="alert_rule.create", target_id=str(rule.pk)).actor_label == \
        "API key: acme admin key"


def test_it_refuses_what_the_console_form_refuses(acme_api, cast):
    answer = acme_api.post("/alert-rules", {**RULE, "email_recipients": ["not an address"]})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_rule"
    answer = acme_api.post("/alert-rules", {**RULE, "all_users": False,
                                            "smtp_user_ids": [cast.globex_smtp.pk]})
    assert answer.status_code == 422
    assert not AlertRule.objects.filter(name="Bounces").exists()


def test_it_replaces_and_deletes_a_rule(acme_api, cast):
    rule = make_rule(cast.acme)
    answer = acme_api.call("put", f"/alert-rules/{rule.pk}", {**RULE, "enabled": False})
    assert answer.status_code == 200
    rule.refresh_from_db()
    assert rule.name == "Bounces" and not rule.enabled
    assert acme_api.delete(f"/alert-rules/{rule.pk}").status_code == 204
    assert not AlertRule.objects.filter(pk=rule.pk).exists()


def test_a_read_only_key_cannot_change_rules(acme_reader, cast):
    rule = make_rule(cast.acme)
    assert acme_reader.post("/alert-rules", RULE).status_code == 403
    assert acme_reader.call("put", f"/alert-rules/{rule.pk}", RULE).status_code == 403
    assert acme_reader.delete(f"/alert-rules/{rule.pk}").status_code == 403
    assert AlertRule.objects.get(pk=rule.pk).name == "Failures"


def test_another_accounts_rule_is_a_404(globex_api, cast):
    rule = make_rule(cast.acme)
    assert globex_api.get(f"/alert-rules/{rule.pk}").status_code == 404
    assert globex_api.call("put", f"/alert-rules/{rule.pk}", RULE).status_code == 404
    assert globex_api.delete(f"/alert-rules/{rule.pk}").status_code == 404
    assert AlertRule.objects.get(pk=rule.pk).name == "Failures"


def test_an_admin_key_sends_a_test_alert_and_sees_where_it_went(acme_api, cast, mailoutbox):
    rule = make_rule(cast.acme, name="Failures")
    answer = acme_api.post(f"/alert-rules/{rule.pk}/test")
    assert answer.status_code == 200
    assert answer.json()["notifications"] == [
        {"channel": "email", "target": "ops@acme.test", "sent": True, "error": ""}]
    assert [m.to for m in mailoutbox] == [["ops@acme.test"]]
    assert AuditEvent.objects.get(action="alert_rule.test").actor_label == "API key: acme admin key"


def test_an_admin_key_switches_a_rule_off_and_on(acme_api, acme_reader, globex_api, cast):
    rule = make_rule(cast.acme, name="Failures")
    assert acme_api.post(f"/alert-rules/{rule.pk}/disable").json()["enabled"] is False
    rule.refresh_from_db()
    assert rule.enabled is False
    assert acme_api.post(f"/alert-rules/{rule.pk}/enable").json()["enabled"] is True
    assert acme_reader.post(f"/alert-rules/{rule.pk}/disable").status_code == 403
    assert globex_api.post(f"/alert-rules/{rule.pk}/disable").status_code == 404
    rule.refresh_from_db()
    assert rule.enabled is True
