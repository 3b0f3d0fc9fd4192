"""Provider verdicts of a sending domain: from its SPF and DMARC findings (checked against
the real DNS server) and its DKIM keys."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.domains.health import (
    dmarc_findings,
    provider_verdicts,
    spf_findings,
    stored_findings,
)
from accounts.models import DkimKey, SendingDomain


@pytest.fixture
def egress(settings):
    settings.RELAY_EGRESS_IPS = ["203.0.113.7"]
    settings.RELAY_SPF_INCLUDE = ""


def sending_domain(cast, name, *, verified=True, dkim="match"):
    domain = SendingDomain.objects.create(
        account=cast.acme, domain=name, token="t" * 32,
        status="verified" if verified else "unverified",
        verified_how="dns" if verified else "", verified_at=timezone.now() if verified else None)
    if dkim:
        DkimKey.objects.create(sending_domain=domain, selector="s1", private_key_encrypted="x",
                               public_key="AAAA", state="active", dns_status=dkim)
    return domain


def check(domain):
    return spf_findings(domain) + dmarc_findings(domain)


def by_rule(verdicts):
    return {v.name: v.result for v in verdicts}


def test_a_healthy_domain_passes_every_rule(dns_server, cast, egress):
    dns_server.set_records("healthy.test", [
        ("@", "TXT", '"v=spf1 ip4:203.0.113.7 -all"'),
        ("_dmarc", "TXT", '"v=DMARC1; p=reject; rua=mailto:d@healthy.test"')])
    domain = sending_domain(cast, "healthy.test")
    verdicts = provider_verdicts(domain, check(domain))
    assert {v.result for v in verdicts} == {"pass"}
    assert len(verdicts) == 5 and verdicts[0].summary == "Would pass"


def test_without_dkim_bulk_rules_fail_but_spf_alone_passes_dmarc(dns_server, cast, egress):
    dns_server.set_records("nodkim.test", [
        ("@", "TXT", '"v=spf1 ip4:203.0.113.7 -all"'),
        ("_dmarc", "TXT", '"v=DMARC1; p=none; rua=mailto:d@nodkim.test"')])
    domain = sending_domain(cast, "nodkim.test", dkim="missing")
    verdicts = provider_verdicts(domain, check(domain))
    assert by_rule(verdicts) == {
        "DMARC at any receiver": "pass",
        "Gmail (all senders)": "pass",
        "Gmail (bulk senders)": "fail",
        "Yahoo (bulk senders)": "fail",
        "Outlook.com (high-volume senders)": "fail",
    }
    dkim = next(r for r in verdicts[2].requirements if r.label == "DKIM passes")
    assert dkim.result == "fail" and "missing" in dkim.why


def test_dkim_alone_passes_dmarc_when_spf_does_not_authorize_the_relay(dns_server, cast, egress):
    dns_server.set_records("dkimonly.test", [
        ("@", "TXT", '"v=spf1 ip4:198.51.100.1 -all"'),
        ("_dmarc", "TXT", '"v=DMARC1; p=quarantine; rua=mailto:d@dkimonly.test"')])
    domain = sending_domain(cast, "dkimonly.test")
    result = by_rule(provider_verdicts(domain, check(domain)))
    assert result["DMARC at any receiver"] == "pass"
    assert result["Gmail (all senders)"] == "pass"
    assert result["Yahoo (bulk senders)"] == "fail"  # SPF must pass as well


def test_no_dmarc_record_fails_the_bulk_rules(dns_server, cast, egress):
    dns_server.set_records("nodmarcv.test", [("@", "TXT", '"v=spf1 ip4:203.0.113.7 -all"')])
    domain = sending_domain(cast, "nodmarcv.test")
    verdicts = provider_verdicts(domain, check(domain))
    gmail_bulk = verdicts[2]
    assert gmail_bulk.result == "fail"
    record = next(r for r in gmail_bulk.requirements if r.label.startswith("A DMARC record"))
    assert record.result == "fail" and "no DMARC record" in record.why


def test_an_unverified_domain_has_no_dkim_and_no_spf_fails_everything(dns_server, cast, egress):
    dns_server.set_records("unverified.test", [])
    domain = sending_domain(cast, "unverified.test", verified=False, dkim="")
    assert {v.result for v in provider_verdicts(domain, check(domain))} == {"fail"}


def test_dns_that_does_not_answer_gives_cannot_tell_not_fail(dns_server, cast, egress):
    dns_server.break_zone("verdict-broken.test")
    domain = sending_domain(cast, "verdict-broken.test", dkim="missing")
    verdicts = provider_verdicts(domain, check(domain))
    assert verdicts[0].result == "unknown" and verdicts[0].summary == "Cannot tell yet"
    assert verdicts[2].result == "fail"  # DKIM is known to be missing


def test_verdicts_read_the_stored_check_without_asking_dns(dns_server, cast, egress, settings):
    dns_server.set_records("stored.test", [
        ("@", "TXT", '"v=spf1 ip4:203.0.113.7 -all"'),
        ("_dmarc", "TXT", '"v=DMARC1; p=reject; rua=mailto:d@stored.test"')])
    domain = sending_domain(cast, "stored.test")
    domain.check_result = {"findings": [f.to_dict() for f in check(domain)]}
    domain.save()
    settings.SMTPPLUS_DNS_RESOLVERS = [dns_server.silent_address]  # DNS would time out
    domain.refresh_from_db()
    assert {f.check for f in stored_findings(domain)} == {"spf", "dmarc"}
    assert {v.result for v in provider_verdicts(domain)} == {"pass"}


def test_a_domain_never_checked_cannot_be_told(cast):
    domain = sending_domain(cast, "never.test")
    verdicts = provider_verdicts(domain)
    assert verdicts[0].result == "pass"  # DKIM alone, from its key
    assert verdicts[2].result == "unknown"
