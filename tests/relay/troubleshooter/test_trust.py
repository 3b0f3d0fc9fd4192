"""The troubleshooter's "Will recipients trust this user's mail?" check: verification, DKIM,
SPF and DMARC of the domains the user sends from, read from the last check (records served
by the real DNS server when the check ran), never from DNS at page load."""

from __future__ import annotations

import pytest
from django.utils import timezone

from accounts.domains.health import dmarc_findings, spf_findings
from accounts.models import DkimKey, SendingDomain
from relay.troubleshooter.base import NODATA, OK, PROBLEM
from relay.troubleshooter.trust import check_trust

GOOD = [("@", "TXT", '"v=spf1 ip4:203.0.113.7 -all"'),
        ("_dmarc", "TXT", '"v=DMARC1; p=reject; rua=mailto:d@acme.test"')]


@pytest.fixture
def egress(settings):
    settings.RELAY_EGRESS_IPS = ["203.0.113.7"]
    settings.RELAY_SPF_INCLUDE = ""


def sending(account, name="acme.test", *, status="verified", dkim="match", subdomains=False):
    SendingDomain.objects.filter(account=account, domain=name).delete()
    sd = SendingDomain.objects.create(
        account=account, domain=name, token="t" * 32, status=status,
        verified_how="dns" if status == "verified" else "",
        verified_at=timezone.now() if status == "verified" else None,
        include_subdomains=subdomains)
    if dkim:
        DkimKey.objects.create(sending_domain=sd, selector="s1", private_key_encrypted="x",
                               public_key="AAAA", state="active", dns_status=dkim)
    return sd


def checked(sd):
    """What a check of the domain stores (the findings of SPF and DMARC, asked of DNS now)."""
    findings = spf_findings(sd) + dmarc_findings(sd)
    sd.check_result = {"checked_at": timezone.now().isoformat(),
                       "findings": [f.to_dict() for f in findings]}
    sd.last_checked_at = timezone.now()
    sd.save()
    return sd


def trust(cast):
    return check_trust(cast.acme_smtp, timezone.now())


def test_a_verified_signed_domain_with_good_records_is_trusted(dns_server, cast, egress, settings):
    dns_server.set_records("acme.test", GOOD)
    checked(sending(cast.acme))
    # The page reads what the last check stored: DNS that would time out changes nothing.
    settings.SMTPPLUS_DNS_RESOLVERS = [dns_server.silent_address]
    result = trust(cast)
    assert result.status == OK, result.evidence
    assert result.title == "Recipients can trust this user's mail"
    assert "pass every provider rule" in result.evidence[0]


def test_a_domain_that_is_not_a_sending_domain_of_the_account_is_a_problem(cast):
    SendingDomain.objects.filter(account=cast.acme).delete()
    # Another account's verified domain of the same name does not count.
    sending(cast.globex, "acme.test")
    result = trust(cast)
    assert result.status == PROBLEM
    assert "acme.test is not a sending domain of the account" in result.evidence[0]
    assert "Add it as a sending domain and verify it" in result.evidence[0]


def test_an_unverified_domain_is_a_problem(cast):
    sending(cast.acme, status="unverified", dkim="")
    result = trust(cast)
    assert result.status == PROBLEM
    assert "is unverified" in result.evidence[0] and "does not sign" in result.evidence[0]


def test_a_domain_never_checked_asks_for_a_check(cast):
    sending(cast.acme)
    result = trust(cast)
    assert result.status == NODATA
    assert "not checked yet" in result.evidence[0]
    assert result.fix is not None


def test_each_spf_and_dmarc_problem_comes_with_its_fix(dns_server, cast, egress):
    dns_server.set_records("acme.test", [("@", "TXT", '"v=spf1 ip4:198.51.100.1 -all"')])
    checked(sending(cast.acme))
    result = trust(cast)
    assert result.status == PROBLEM
    text = "\n".join(result.evidence)
    assert ("acme.test — SPF: The SPF record of acme.test does not authorize this relay's "
            'address. Publish: acme.test. IN TXT "v=spf1 ip4:198.51.100.1 ip4:203.0.113.7 -all"'
            ) in text
    assert ('acme.test — DMARC: acme.test has no DMARC record. Publish: _dmarc.acme.test. IN '
            'TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@acme.test"') in text
    assert ("acme.test would fail: Gmail (bulk senders), Yahoo (bulk senders), Outlook.com "
            "(high-volume senders).") in text


def test_a_missing_dkim_key_is_a_problem_even_with_good_records(dns_server, cast, egress):
    dns_server.set_records("acme.test", GOOD)
    checked(sending(cast.acme, dkim="mismatch"))
    result = trust(cast)
    assert result.status == PROBLEM
    assert "DKIM: s1._domainkey.acme.test is mismatch in DNS" in result.evidence[0]


def test_a_subdomain_is_judged_by_the_sending_domain_that_covers_it(dns_server, cast, egress):
    dns_server.set_records("acme.test", GOOD)
    cast.acme_smtp.authorized_domains.all().delete()
    cast.acme_smtp.authorized_domains.create(domain="shop.acme.test")
    checked(sending(cast.acme, subdomains=True))
    result = trust(cast)
    assert result.status == OK, result.evidence


def test_dns_that_did_not_answer_at_the_last_check_is_not_a_problem(dns_server, cast, egress):
    dns_server.break_zone("acme.test")
    checked(sending(cast.acme))
    result = trust(cast)
    assert result.status == NODATA
    assert any("Could not check the SPF record" in line for line in result.evidence)
    assert not any("no SPF record" in line for line in result.evidence)


def test_the_check_is_on_the_troubleshooter_page(dns_server, cast, egress, alice_client):
    dns_server.set_records("acme.test", [("@", "TXT", '"v=spf1 ip4:198.51.100.1 -all"')])
    checked(sending(cast.acme))
    page = alice_client.get(f"/users/{cast.acme_smtp.pk}/troubleshoot/").content.decode()
    assert 'id="check-trust"' in page
    assert "Recipients may not trust this user&#x27;s mail" in page
    assert "ip4:198.51.100.1 ip4:203.0.113.7 -all" in page


def test_an_authorized_address_at_a_sending_domain_is_checked_too(dns_server, cast, egress):
    dns_server.set_records("acme.test", [("@", "TXT", '"v=spf1 ip4:198.51.100.1 -all"')])
    cast.acme_smtp.authorized_domains.all().delete()
    cast.acme_smtp.authorized_emails.create(email="shop@acme.test")
    cast.acme_smtp.authorized_emails.create(email="someone@gmail.example")
    checked(sending(cast.acme))
    result = trust(cast)
    assert result.status == PROBLEM
    assert any(line.startswith("acme.test — SPF:") for line in result.evidence)
    assert not any("gmail.example" in line for line in result.evidence)


def test_a_user_sending_only_from_other_providers_addresses_has_nothing_to_check(cast):
    cast.acme_smtp.authorized_domains.all().delete()
    cast.acme_smtp.authorized_emails.create(email="someone@gmail.example")
    result = trust(cast)
    assert result.status == NODATA
    assert "sends from no domain of the account" in result.evidence[0]


def test_the_check_reads_a_bounded_number_of_rows(dns_server, cast, egress):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for name in ("acme.test", "acme-shop.test", "acme-mail.test"):
        dns_server.set_records(name, GOOD)
        cast.acme_smtp.authorized_domains.get_or_create(domain=name)
        checked(sending(cast.acme, name))
    with CaptureQueriesContext(connection) as queries:
        assert trust(cast).status == OK
    # authorized domains, authorized addresses, sending domains, their DKIM keys
    assert len(queries) == 4, [q["sql"] for q in queries]
