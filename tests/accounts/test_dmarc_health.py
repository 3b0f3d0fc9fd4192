"""The DMARC check of sending domains, against records served by the real DNS server (Knot).

Every verdict the check gives has a test here; each zone is its own.
"""

from __future__ import annotations

import pytest

from accounts.domains.dmarchealth import dmarc_findings, organizational_domain


def codes(findings):
    return sorted(f.code for f in findings)


def one(findings, code):
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, codes(findings)
    return found[0]


def test_a_domain_without_dmarc_gets_the_record_to_publish(dns_server):
    dns_server.set_records("nodmarc.test", [("@", "TXT", '"v=spf1 -all"')])
    findings = dmarc_findings("nodmarc.test")
    assert codes(findings) == ["dmarc.none"]
    finding = findings[0]
    assert finding.severity == "error"
    assert finding.record_name == "_dmarc.nodmarc.test" and finding.record_type == "TXT"
    assert finding.fix == ('_dmarc.nodmarc.test. IN TXT '
                           '"v=DMARC1; p=none; rua=mailto:dmarc-reports@nodmarc.test"')


def test_a_txt_record_that_is_not_dmarc_does_not_count(dns_server):
    dns_server.set_records("notdmarc.test", [("_dmarc", "TXT", '"v=spf1 -all"')])
    assert codes(dmarc_findings("notdmarc.test")) == ["dmarc.none"]


def test_a_subdomain_uses_the_record_of_its_organizational_domain(dns_server):
    dns_server.set_records("orgonly.test", [
        ("_dmarc", "TXT", '"v=DMARC1; p=reject; sp=quarantine; rua=mailto:d@orgonly.test"')])
    findings = dmarc_findings("mail.orgonly.test")
    assert codes(findings) == ["dmarc.inherited", "dmarc.p_quarantine"]
    assert one(findings, "dmarc.inherited").severity == "info"
    applied = one(findings, "dmarc.p_quarantine")
    assert applied.severity == "ok" and "sp=quarantine" in applied.title


def test_a_subdomain_without_sp_inherits_p(dns_server):
    dns_server.set_records("orgnosp.test", [
        ("_dmarc", "TXT", '"v=DMARC1; p=none; rua=mailto:d@orgnosp.test"')])
    findings = dmarc_findings("news.orgnosp.test")
    warning = one(findings, "dmarc.p_none")
    assert warning.record_name == "_dmarc.orgnosp.test"
    assert warning.fix == ('_dmarc.orgnosp.test. IN TXT '
                           '"v=DMARC1; p=quarantine; rua=mailto:d@orgnosp.test"')


def test_a_subdomain_with_no_record_anywhere_gets_a_record_for_itself(dns_server):
    dns_server.set_records("orgnone.test", [])
    finding = one(dmarc_findings("mail.orgnone.test"), "dmarc.none")
    assert finding.record_name == "_dmarc.mail.orgnone.test"
    assert "_dmarc.orgnone.test" in finding.explanation


def test_the_organizational_domain_comes_from_the_public_suffix_list():
    assert organizational_domain("mail.shop.example.co.uk") == "example.co.uk"
    assert organizational_domain("a.b.acme.test") == "acme.test"
    assert organizational_domain("acme.test") == "acme.test"


def test_p_none_is_a_warning_whose_fix_moves_to_quarantine(dns_server):
    dns_server.set_records("pnone.test", [
        ("_dmarc", "TXT", '"v=DMARC1; p=none; rua=mailto:d@pnone.test"')])
    findings = dmarc_findings("pnone.test")
    assert codes(findings) == ["dmarc.p_none"]
    assert findings[0].severity == "warning"
    assert findings[0].fix == ('_dmarc.pnone.test. IN TXT '
                               '"v=DMARC1; p=quarantine; rua=mailto:d@pnone.test"')


@pytest.mark.parametrize("policy", ["quarantine", "reject"])
def test_an_enforced_policy_is_ok(dns_server, policy):
    dns_server.set_records("penforced.test", [
        ("_dmarc", "TXT", f'"v=DMARC1; p={policy}; rua=mailto:d@penforced.test"')])
    findings = dmarc_findings("penforced.test")
    assert codes(findings) == [f"dmarc.p_{policy}"]
    assert findings[0].severity == "ok" and findings[0].fix == ""


def test_sp_weaker_than_p_is_a_warning(dns_server):
    dns_server.set_records("spweak.test", [
        ("_dmarc", "TXT", '"v=DMARC1; p=reject; sp=none; rua=mailto:d@spweak.test"')])
    findings = dmarc_findings("spweak.test")
    assert codes(findings) == ["dmarc.p_reject", "dmarc.sp_weaker"]
    finding = one(findings, "dmarc.sp_weaker")
    assert finding.severity == "warning"
    assert finding.fix == '_dmarc.spweak.test. IN TXT "v=DMARC1; p=reject; rua=mailto:d@spweak.test"'


def test_pct_below_100_is_a_warning(dns_server):
    dns_server.set_records("pct.test", [
        ("_dmarc", "TXT", '"v=DMARC1; p=quarantine; pct=25; rua=mailto:d@pct.test"')])
    findings = dmarc_findings("pct.test")
    finding = one(findings, "dmarc.pct")
    assert finding.severity == "warning" and "25%" in finding.title
    assert finding.fix == '_dmarc.pct.test. IN TXT "v=DMARC1; p=quarantine; rua=mailto:d@pct.test"'


def test_strict_alignment_is_explained(dns_server):
    dns_server.set_records("strict.test", [
        ("_dmarc", "TXT", '"v=DMARC1; p=reject; adkim=s; aspf=s; rua=mailto:d@strict.test"')])
    findings = dmarc_findings("strict.test")
    assert codes(findings) == ["dmarc.adkim_strict", "dmarc.aspf_strict", "dmarc.p_reject"]
    assert one(findings, "dmarc.adkim_strict").severity == "info"
    assert "d=strict.test" in one(findings, "dmarc.adkim_strict").explanation


def test_a_record_without_rua_is_an_info_with_reports_added(dns_server):
    dns_server.set_records("norua.test", [("_dmarc", "TXT", '"v=DMARC1; p=reject"')])
    finding = one(dmarc_findings("norua.test"), "dmarc.no_rua")
    assert finding.severity == "info"
    assert finding.fix == ('_dmarc.norua.test. IN TXT '
                           '"v=DMARC1; p=reject; rua=mailto:dmarc-reports@norua.test"')


@pytest.mark.parametrize("record, fixed", [
    ("v=DMARC1; p=bogus; rua=mailto:d@syn.test", "v=DMARC1; p=none; rua=mailto:d@syn.test"),
    ("v=DMARC1 p=reject", "v=DMARC1; p=reject"),
    ("v=DMARC1; p=reject; pct=150", "v=DMARC1; p=reject"),
    ("v=DMARC1; rua=mailto:d@syn.test", "v=DMARC1; p=none; rua=mailto:d@syn.test"),
])
def test_a_syntax_error_is_an_error_with_a_repaired_record(dns_server, record, fixed):
    dns_server.set_records("syn.test", [("_dmarc", "TXT", f'"{record}"')])
    findings = dmarc_findings("syn.test")
    assert codes(findings) == ["dmarc.syntax"]
    assert findings[0].severity == "error"
    assert findings[0].fix == f'_dmarc.syn.test. IN TXT "{fixed}"'


def test_two_dmarc_records_are_an_error(dns_server):
    dns_server.set_records("twodmarc.test", [
        ("_dmarc", "TXT", '"v=DMARC1; p=reject"'), ("_dmarc", "TXT", '"v=DMARC1; p=none"')])
    findings = dmarc_findings("twodmarc.test")
    assert codes(findings) == ["dmarc.multiple"]
    assert "ignore them all" in findings[0].explanation


def test_servfail_is_could_not_check_never_missing(dns_server):
    dns_server.break_zone("dmarc-broken.test")
    findings = dmarc_findings("dmarc-broken.test")
    assert codes(findings) == ["dmarc.unknown"]
    assert findings[0].severity == "unknown" and "not a missing record" in findings[0].explanation


def test_servfail_at_the_organizational_domain_is_unknown_too(dns_server):
    dns_server.break_zone("dmarc-broken2.test")
    dns_server.set_records("sub.dmarc-broken2.test", [])  # its own zone answers
    findings = dmarc_findings("sub.dmarc-broken2.test")
    assert codes(findings) == ["dmarc.unknown"]


def test_a_timeout_is_could_not_check(dns_server, settings):
    settings.SMTPPLUS_DNS_RESOLVERS = [dns_server.silent_address]
    settings.SMTPPLUS_DNS_TIMEOUT = 0.5
    findings = dmarc_findings("anything.test")
    assert codes(findings) == ["dmarc.unknown"] and "timeout" in findings[0].explanation
