"""SPF and DMARC join every check of a sending domain: Check now stores their findings, the
domain's page shows them with the provider verdicts, the troubleshooter links to it."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.actions.domains import check_domain
from accounts.domains.health import dmarc_findings, spf_findings
from accounts.domains.ownership import CHECKS
from accounts.models import SendingDomain
from relay.troubleshooter.trust import check_trust

pytestmark = pytest.mark.django_db


@pytest.fixture
def domain(cast, dns_server, settings):
    settings.RELAY_EGRESS_IPS = ["203.0.113.7"]
    SendingDomain.objects.filter(account=cast.acme, domain="acme.test").delete()
    row = SendingDomain.objects.create(account=cast.acme, domain="acme.test", token="t" * 32)
    dns_server.set_records("acme.test", [
        ("_smtpplus", "TXT", f'"{row.verification_value}"'),
        ("@", "TXT", '"v=spf1 ip4:198.51.100.1 -all"'),
        ("_dmarc", "TXT", '"v=DMARC1; p=reject; rua=mailto:d@acme.test"')])
    return row


def test_the_spf_and_dmarc_checks_are_registered():
    assert spf_findings in CHECKS and dmarc_findings in CHECKS


def test_a_check_of_the_domain_stores_its_spf_and_dmarc_findings(domain):
    check_domain(domain)
    domain.refresh_from_db()
    codes = {f["code"] for f in domain.check_result["findings"]}
    assert {"spf.not_authorized", "spf.valid", "dmarc.p_reject"} <= codes


def test_the_domain_page_shows_the_health_with_the_verdicts(domain, alice_client):
    alice_client.post(reverse("accounts:domain_check", args=[domain.pk]))
    html = alice_client.get(reverse("accounts:domain_detail", args=[domain.pk])).content.decode()
    assert 'id="health-verdicts"' in html
    assert 'data-code="spf.not_authorized"' in html
    assert ("acme.test. IN TXT &quot;v=spf1 ip4:198.51.100.1 ip4:203.0.113.7 -all&quot;"
            in html)
    # Shown once: the page's list of other findings leaves SPF and DMARC to the include.
    assert html.count('data-code="spf.not_authorized"') == 1
    assert html.count('data-check="spf"') == 2  # not_authorized and valid, nothing else


def test_the_trust_check_links_to_the_domains_page_to_check_it_again(domain, cast):
    check_domain(domain)
    cast.acme_smtp.authorized_domains.get_or_create(domain="acme.test")
    result = check_trust(cast.acme_smtp, timezone.now())
    assert result.status == "problem"
    urls = {action.label: action.url for action in result.fix.actions}
    assert urls["Open acme.test and check now"] == reverse("accounts:domain_detail",
                                                           args=[domain.pk])
