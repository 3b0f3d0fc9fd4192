"""Sending domains: proof by a TXT record, lapse, the one-account rule — against the
suite's real DNS server (Knot)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.actions import domains as actions
from accounts.domains import ownership
from accounts.domains.findings import Finding
from accounts.models import (
    AuditEvent,
    DomainEvent,
    DomainEventKind,
    DomainStatus,
    SendingDomain,
    SmtpUser,
    VerifiedHow,
)
from accounts.senders import InvalidEntry
from smtpplus.dns import lookup_txt


def publish(dns_server, *rows: SendingDomain, extra: list[tuple[str, str, str]] | None = None):
    """Serve the zone of the rows' domain with each row's token (and `extra` records)."""
    zone = rows[0].domain
    records = [("_smtpplus", "TXT", f'"{r.verification_value}"') for r in rows]
    dns_server.set_records(zone, records + (extra or []))


def unpublish(dns_server, zone: str):
    dns_server.set_records(zone, [("@", "TXT", '"v=spf1 -all"')])


def verification(found: list[Finding]) -> Finding:
    """The ownership finding of a check (the DKIM and other checks' findings follow it)."""
    assert found[0].check == "verification"
    return found[0]


def version(user: SmtpUser) -> int:
    return SmtpUser.objects.get(pk=user.pk).version


def test_a_domain_is_added_unverified_in_its_stored_form_with_a_random_token(cast):
    one = actions.add_domain(cast.acme, "Bücher.Example.")
    two = actions.add_domain(cast.acme, "other.example")
    assert one.domain == "xn--bcher-kva.example" and one.display == "bücher.example"
    assert one.status == DomainStatus.UNVERIFIED
    assert len(one.token) == 32 and one.token != two.token
    assert one.verification_name == "_smtpplus.xn--bcher-kva.example"
    assert AuditEvent.objects.filter(action="domain.add", account=cast.acme).count() == 2
    with pytest.raises(InvalidEntry, match="already a sending domain of this account"):
        actions.add_domain(cast.acme, "BÜCHER.example")
    with pytest.raises(InvalidEntry, match="email address"):
        actions.add_domain(cast.acme, "x@y.example")


def test_publishing_the_token_verifies_the_domain_and_tells_the_relays(cast, dns_server):
    domain = actions.add_domain(cast.acme, "verify-me.test")
    before = version(cast.acme_smtp)
    publish(dns_server, domain)
    found = actions.check_domain(domain)
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED and domain.verified_how == VerifiedHow.DNS
    assert found[0] == Finding("verification", "ok", "verify-me.test is verified by its DNS record",
                               "_smtpplus.verify-me.test has the token.")
    assert domain.check_result["findings"][0]["severity"] == "ok"
    assert domain.last_checked_at is not None
    assert version(cast.acme_smtp) > before
    assert DomainEvent.objects.get(sending_domain=domain).kind == DomainEventKind.VERIFIED
    assert AuditEvent.objects.filter(action="domain.verify", target_id=str(domain.pk)).exists()


def test_without_the_token_the_domain_stays_unverified_and_the_finding_gives_the_record(
        cast, dns_server):
    domain = actions.add_domain(cast.acme, "no-token.test")
    dns_server.set_records("no-token.test", [("_smtpplus", "TXT", '"smtpplus-verification=wrong"')])
    finding = verification(actions.check_domain(domain))
    domain.refresh_from_db()
    assert domain.status == DomainStatus.UNVERIFIED
    assert finding.severity == "error" and "not verified yet" in finding.title
    assert "none is this domain's token" in finding.explanation
    assert finding.fix == f'_smtpplus.no-token.test. IN TXT "smtpplus-verification={domain.token}"'
    assert (finding.record_name, finding.record_type) == ("_smtpplus.no-token.test", "TXT")


def test_a_dns_verified_domain_whose_record_disappears_lapses_after_the_grace_period(
        cast, dns_server, settings):
    settings.SMTPPLUS_DOMAIN_LAPSE_GRACE = 3600
    domain = actions.add_domain(cast.acme, "lapse.test")
    publish(dns_server, domain)
    actions.check_domain(domain)
    unpublish(dns_server, "lapse.test")
    finding = verification(actions.check_domain(domain))
    domain.refresh_from_db()
    # Within the grace period: still verified, and the check says it is going.
    assert domain.status == DomainStatus.VERIFIED and domain.record_missing_since is not None
    assert finding.severity == "error" and "is gone" in finding.title
    assert "lapses" in finding.explanation
    SendingDomain.objects.filter(pk=domain.pk).update(
        record_missing_since=timezone.now() - timedelta(seconds=3601))
    before = version(cast.acme_smtp)
    actions.check_domain(domain)
    domain.refresh_from_db()
    assert domain.status == DomainStatus.LAPSED
    assert version(cast.acme_smtp) > before
    lapsed = DomainEvent.objects.get(sending_domain=domain, kind=DomainEventKind.LAPSED)
    assert "_smtpplus.lapse.test has been missing since" in lapsed.reason
    # Publishing it again verifies it again.
    publish(dns_server, domain)
    actions.check_domain(domain)
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED and domain.record_missing_since is None


@pytest.mark.parametrize("how", [VerifiedHow.UPGRADE, VerifiedHow.OPERATOR])
def test_a_domain_verified_at_upgrade_or_by_an_operator_never_lapses_on_a_missing_record(
        cast, dns_server, settings, how):
    settings.SMTPPLUS_DOMAIN_LAPSE_GRACE = 0
    domain = SendingDomain.objects.create(
        account=cast.acme, domain=f"{how}-kept.test", token=ownership.new_token(),
        status=DomainStatus.VERIFIED, verified_how=how, verified_at=timezone.now())
    unpublish(dns_server, domain.domain)
    finding = verification(actions.check_domain(domain))
    actions.check_domain(domain)
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED and domain.record_missing_since is None
    assert finding.severity == "info" and "not by DNS" in finding.title
    assert finding.fix.startswith("_smtpplus." + domain.domain)


def test_a_check_that_could_not_run_never_counts_as_a_missing_record(cast, dns_server, settings):
    settings.SMTPPLUS_DOMAIN_LAPSE_GRACE = 0
    domain = actions.add_domain(cast.acme, "servfail.test")
    publish(dns_server, domain)
    actions.check_domain(domain)
    dns_server.break_zone("servfail.test")
    finding = verification(actions.check_domain(domain))
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED and domain.record_missing_since is None
    assert finding.severity == "unknown" and "Could not check" in finding.title
    assert "SERVFAIL" in finding.explanation


def test_a_timeout_never_counts_as_a_missing_record(cast, dns_server, settings):
    domain = SendingDomain.objects.create(
        account=cast.acme, domain="timeout.test", token=ownership.new_token(),
        status=DomainStatus.VERIFIED, verified_how=VerifiedHow.DNS, verified_at=timezone.now())
    settings.SMTPPLUS_DNS_RESOLVERS = [dns_server.silent_address]
    settings.SMTPPLUS_DNS_TIMEOUT = 0.5
    settings.SMTPPLUS_DOMAIN_LAPSE_GRACE = 0
    finding = verification(actions.check_domain(domain))
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED and domain.record_missing_since is None
    assert finding.severity == "unknown" and "timeout" in finding.explanation


def test_a_second_account_cannot_verify_a_domain_another_account_verified(cast, dns_server):
    theirs = actions.add_domain(cast.globex, "contested.test")
    publish(dns_server, theirs)
    actions.check_domain(theirs)
    ours = actions.add_domain(cast.acme, "contested.test")
    publish(dns_server, theirs, ours)
    finding = verification(actions.check_domain(ours))
    ours.refresh_from_db()
    assert ours.status == DomainStatus.UNVERIFIED
    assert finding.severity == "error"
    assert ("contested.test is already verified by another account; if it is yours, ask the "
            "operator to transfer it") in finding.explanation
    theirs.refresh_from_db()
    assert theirs.status == DomainStatus.VERIFIED


def test_the_first_account_to_prove_a_domain_takes_it_from_the_rows_verified_at_upgrade(
        cast, dns_server):
    rows = [
        SendingDomain.objects.create(
            account=account, domain="shared.test", token=ownership.new_token(),
            status=DomainStatus.VERIFIED, verified_how=VerifiedHow.UPGRADE,
            verified_at=timezone.now())
        for account in (cast.acme, cast.globex)
    ]
    acme_row, globex_row = rows
    globex_version = version(cast.globex_smtp)
    publish(dns_server, acme_row)
    actions.check_domain(acme_row)
    acme_row.refresh_from_db()
    globex_row.refresh_from_db()
    assert (acme_row.status, acme_row.verified_how) == (DomainStatus.VERIFIED, VerifiedHow.DNS)
    assert globex_row.status == DomainStatus.UNVERIFIED and globex_row.verified_how == ""
    claimed = DomainEvent.objects.get(account=cast.globex, kind=DomainEventKind.CLAIMED)
    assert "another account proved that it owns shared.test" in claimed.reason
    assert AuditEvent.objects.filter(account=cast.globex,
                                     action="domain.claimed_by_other_account").exists()
    assert version(cast.globex_smtp) > globex_version


def test_an_operator_verifies_by_hand_but_not_a_domain_another_account_owns(cast, dns_server):
    domain = actions.add_domain(cast.acme, "by-hand.test")
    actions.force_verify(domain)
    domain.refresh_from_db()
    assert (domain.status, domain.verified_how) == (DomainStatus.VERIFIED, VerifiedHow.OPERATOR)
    other = actions.add_domain(cast.globex, "by-hand.test")
    with pytest.raises(InvalidEntry, match="is verified by account acme: transfer it"):
        actions.force_verify(other)


def test_a_transfer_moves_the_domain_and_is_audited_in_both_accounts(cast):
    domain = actions.add_domain(cast.acme, "moving.test")
    actions.force_verify(domain)
    globex_row = actions.add_domain(cast.globex, "moving.test")
    actions.transfer_domain(domain, cast.globex)
    domain.refresh_from_db()
    assert domain.account == cast.globex and domain.status == DomainStatus.VERIFIED
    assert not SendingDomain.objects.filter(pk=globex_row.pk).exists()
    assert AuditEvent.objects.filter(action="domain.transfer", account=cast.acme).exists()
    assert AuditEvent.objects.filter(action="domain.transfer", account=cast.globex).exists()
    with pytest.raises(InvalidEntry, match="moving.test is already verified in account globex"):
        actions.transfer_domain(actions.add_domain(cast.acme, "moving.test"), cast.globex)
    actions.remove_domain(domain)
    assert not SendingDomain.objects.filter(domain="moving.test", account=cast.globex).exists()


def test_an_error_that_appears_between_two_checks_records_authentication_broken(
        cast, dns_server):
    domain = actions.add_domain(cast.acme, "broken-auth.test")
    publish(dns_server, domain, extra=[("probe", "TXT", '"good"')])

    def probe(sd: SendingDomain, resolver) -> list[Finding]:
        # A check as DKIM/SPF/DMARC plug in: its own lookup, its own findings.
        lookup = lookup_txt(f"probe.{sd.domain}", resolver)
        ok = "good" in lookup.records
        return [Finding("probe", "ok" if ok else "error", "probe record " + ("ok" if ok else "bad"))]

    ownership.register_check(probe)
    try:
        actions.check_domain(domain)
        assert not DomainEvent.objects.filter(kind=DomainEventKind.AUTH_BROKEN).exists()
        publish(dns_server, domain, extra=[("probe", "TXT", '"bad"')])
        actions.check_domain(domain)
        broken = DomainEvent.objects.get(kind=DomainEventKind.AUTH_BROKEN)
        assert broken.reason == "probe: probe record bad"
        assert broken.details["findings"][0]["check"] == "probe"
        # Still broken at the next check: no new event.
        actions.check_domain(domain)
        assert DomainEvent.objects.filter(kind=DomainEventKind.AUTH_BROKEN).count() == 1
    finally:
        ownership.CHECKS.remove(probe)


def test_a_verified_domain_whose_record_goes_records_authentication_broken(cast, dns_server):
    domain = actions.add_domain(cast.acme, "record-gone.test")
    publish(dns_server, domain)
    actions.check_domain(domain)
    unpublish(dns_server, "record-gone.test")
    actions.check_domain(domain)
    broken = DomainEvent.objects.get(kind=DomainEventKind.AUTH_BROKEN)
    assert "verification: The verification record of record-gone.test is gone" == broken.reason


def test_due_domains_are_those_not_checked_for_the_recheck_interval(cast, settings):
    settings.SMTPPLUS_DOMAIN_RECHECK_INTERVAL = 3600
    SendingDomain.objects.update(last_checked_at=timezone.now())  # the cast's domains
    never = actions.add_domain(cast.acme, "never.test")
    old = actions.add_domain(cast.acme, "old.test")
    fresh = actions.add_domain(cast.acme, "fresh.test")
    now = timezone.now()
    SendingDomain.objects.filter(pk=old.pk).update(last_checked_at=now - timedelta(hours=2))
    SendingDomain.objects.filter(pk=fresh.pk).update(last_checked_at=now - timedelta(minutes=5))
    assert [d.domain for d in ownership.due_domains()] == [never.domain, old.domain]


def test_check_now_also_checks_the_dkim_record_and_stores_its_findings(cast, dns_server):
    domain = actions.add_domain(cast.acme, "signed.test")
    publish(dns_server, domain)
    found = actions.check_domain(domain)
    assert [f.check for f in found][:2] == ["verification", "dkim"]
    dkim = [f for f in found if f.check == "dkim"]
    # The domain was just given its key, whose record is not published yet: say what to publish.
    assert dkim[0].severity != "ok" and "_domainkey.signed.test" in dkim[0].record_name
    domain.refresh_from_db()
    stored = ownership.findings_by_check(domain.check_result)
    assert "dkim" in stored


def test_a_new_domain_has_its_dkim_key_from_the_start(cast):
    domain = actions.add_domain(cast.acme, "keyed.test")
    (key,) = domain.dkim_keys.all()
    assert key.state == "pending" and key.algorithm == "rsa"
    assert key.record_name.endswith("._domainkey.keyed.test")
