"""Alerts about sending domains, from real checks against the test DNS server: a domain
that lapses, authentication that breaks, a domain taken by another account."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.actions import domains as actions
from accounts.domains.ownership import new_token
from accounts.models import DomainStatus, SendingDomain, VerifiedHow
from alerts.sending import run_once
from tests.alerts.conftest import later, make_rule

pytestmark = pytest.mark.django_db


def verified(cast, dns_server, name: str) -> SendingDomain:
    domain = actions.add_domain(cast.acme, name)
    dns_server.set_records(name, [("_smtpplus", "TXT", f'"{domain.verification_value}"')])
    actions.check_domain(domain)
    return domain


def test_a_record_that_disappears_alerts_authentication_broken_then_lapsed(cast, dns_server, settings):
    settings.SMTPPLUS_DOMAIN_LAPSE_GRACE = 3600
    make_rule(cast.acme, events=["domain_lapsed", "domain_auth_broken"])
    domain = verified(cast, dns_server, "alerted.test")
    dns_server.set_records("alerted.test", [])
    actions.check_domain(domain)
    run_once(now=later())
    [broken] = mail.outbox
    assert broken.subject.startswith("[SMTP+] 1 sending domain problem (Acme) — authentication of "
                                     "alerted.test broken")
    assert "verification: The verification record of alerted.test is gone" in broken.body
    assert '_smtpplus.alerted.test. IN TXT "smtpplus-verification=' in broken.body
    assert f"https://console.example.com{reverse('accounts:domain_detail', args=[domain.pk])}" \
        in broken.body

    SendingDomain.objects.filter(pk=domain.pk).update(
        record_missing_since=timezone.now() - timedelta(hours=2))
    actions.check_domain(domain)
    run_once(now=later(300))
    lapsed = mail.outbox[1]
    assert "alerted.test can no longer be sent as" in lapsed.subject
    assert "the record _smtpplus.alerted.test has been missing since" in lapsed.body
    assert "Publish the verification record of alerted.test again" in lapsed.body


def test_a_domain_taken_by_another_account_alerts_as_lapsed_with_what_to_do(cast, dns_server):
    make_rule(cast.acme, events=["domain_lapsed"])
    ours = SendingDomain.objects.create(
        account=cast.acme, domain="taken.test", token=new_token(), status=DomainStatus.VERIFIED,
        verified_how=VerifiedHow.UPGRADE, verified_at=timezone.now())
    theirs = actions.add_domain(cast.globex, "taken.test")
    dns_server.set_records("taken.test", [("_smtpplus", "TXT", f'"{theirs.verification_value}"')])
    actions.check_domain(theirs)
    ours.refresh_from_db()
    assert ours.status == DomainStatus.UNVERIFIED
    run_once(now=later())
    [alert] = mail.outbox
    assert "another account proved that it owns taken.test" in alert.body
    assert "ask the operator to transfer it to this account" in alert.body


def test_a_rule_without_domain_events_is_not_alerted(cast, dns_server):
    make_rule(cast.acme, events=["delivery_failed"])
    domain = verified(cast, dns_server, "quiet.test")
    dns_server.set_records("quiet.test", [])
    actions.check_domain(domain)
    run_once(now=later())
    assert mail.outbox == []
