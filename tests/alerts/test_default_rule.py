"""New accounts start with one rule: permanent failures and expiries, as needed, to the
owner's email."""

from __future__ import annotations

import pytest

from accounts.actions.smtp_users import create_account
from alerts.models import AlertRule

pytestmark = pytest.mark.django_db


def test_a_new_account_gets_a_failure_rule_for_its_owner(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        account, owner, _ = create_account("Initech", "Peter@Initech.test")
    rule = AlertRule.objects.get(account=account)
    assert rule.enabled
    assert rule.events == ["delivery_failed", "delivery_expired"]
    assert rule.frequency == "as_needed" and rule.all_users
    assert rule.email_list == ["peter@initech.test"]


def test_the_default_rule_waits_for_the_commit(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        account, _, _ = create_account("Initech", "peter@initech.test")
    assert not AlertRule.objects.filter(account=account).exists()
    assert len(callbacks) >= 1


def test_saving_an_existing_account_adds_no_rule(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        account, _, _ = create_account("Initech", "peter@initech.test")
    with django_capture_on_commit_callbacks(execute=True):
        account.name = "Initech Ltd"
        account.save()
    assert AlertRule.objects.filter(account=account).count() == 1
