"""The Sending domains pages: status badges, the records to publish, Check now against
the real DNS server, roles, and scoping to the account."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent, AuthorizedDomain, DomainStatus, SendingDomain, VerifiedHow
from tests.conftest import login

pytestmark = pytest.mark.django_db


def test_the_list_shows_each_domain_with_its_status_and_the_navigation_links_it(alice_client, cast):
    SendingDomain.objects.create(account=cast.acme, domain="old.test", token="t1",
                                 status=DomainStatus.VERIFIED, verified_how=VerifiedHow.UPGRADE,
                                 verified_at=timezone.now())
    SendingDomain.objects.create(account=cast.acme, domain="new.test", token="t2")
    SendingDomain.objects.create(account=cast.acme, domain="gone.test", token="t3",
                                 status=DomainStatus.LAPSED)
    html = alice_client.get(reverse("accounts:domain_list")).content.decode()
    assert f'<a href="{reverse("accounts:domain_list")}" aria-current="page">Sending domains</a>' in html
    assert '<span class="badge ok" title="Marked verified by an operator">verified</span>' in html
    assert ">verified at upgrade</span>" in html
    assert '<span class="badge problem">unverified</span>' in html
    assert '<span class="badge bad">lapsed</span>' in html
    assert "globex.test" not in html  # another account's


def test_adding_a_domain_shows_the_record_to_publish(alice_client, cast):
    response = alice_client.post(reverse("accounts:domain_add"), {"domain": "Shop.Example."})
    domain = SendingDomain.objects.get(domain="shop.example")
    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:domain_detail", args=[domain.pk])
    html = alice_client.get(response["Location"]).content.decode()
    assert "<code>_smtpplus.shop.example</code>" in html
    assert f'<code id="verification-value">smtpplus-verification={domain.token}</code>' in html
    assert (f'<code id="verification-zone-line">_smtpplus.shop.example. IN TXT '
            f'&quot;smtpplus-verification={domain.token}&quot;</code>') in html
    assert 'data-copy="#verification-value"' in html
    assert AuditEvent.objects.get(action="domain.add").actor == cast.alice


def test_a_bad_domain_is_refused_naming_it(alice_client, cast):
    response = alice_client.post(reverse("accounts:domain_add"), {"domain": "<b>x@y.test"})
    assert response.status_code == 400
    html = response.content.decode()
    assert "&lt;b&gt;x@y.test: this is an email address, not a domain" in html
    assert "<b>x@y.test" not in html


def test_check_now_verifies_a_published_domain(alice_client, cast, dns_server):
    alice_client.post(reverse("accounts:domain_add"), {"domain": "console-check.test"})
    domain = SendingDomain.objects.get(domain="console-check.test")
    check = reverse("accounts:domain_check", args=[domain.pk])
    dns_server.set_records("console-check.test", [])
    html = alice_client.post(check, follow=True).content.decode()
    assert "console-check.test is not verified yet" in html
    dns_server.set_records("console-check.test", [
        ("_smtpplus", "TXT", f'"{domain.verification_value}"')])
    html = alice_client.post(check, follow=True).content.decode()
    assert "console-check.test is now verified." in html
    assert "console-check.test is verified by its DNS record" in html
    domain.refresh_from_db()
    assert domain.status == DomainStatus.VERIFIED


def test_a_viewer_reads_but_cannot_change(client, cast):
    domain = SendingDomain.objects.get(account=cast.acme, domain="acme.test")
    viewer = login(client, cast.victor)
    html = viewer.get(reverse("accounts:domain_detail", args=[domain.pk])).content.decode()
    assert "_smtpplus.acme.test" in html and ">Check now</button>" not in html
    for name in ("domain_check", "domain_remove", "domain_subdomains"):
        assert viewer.post(reverse(f"accounts:{name}", args=[domain.pk])).status_code == 403
    assert viewer.post(reverse("accounts:domain_add"), {"domain": "x.test"}).status_code == 403


def test_another_accounts_domain_is_a_404(alice_client, cast):
    theirs = SendingDomain.objects.get(account=cast.globex)
    assert alice_client.get(reverse("accounts:domain_detail", args=[theirs.pk])).status_code == 404
    for name in ("domain_check", "domain_remove", "domain_subdomains"):
        assert alice_client.post(reverse(f"accounts:{name}", args=[theirs.pk])).status_code == 404
    assert SendingDomain.objects.filter(pk=theirs.pk).exists()


def test_subdomains_and_removal(alice_client, cast):
    domain = SendingDomain.objects.get(account=cast.acme, domain="acme.test")
    alice_client.post(reverse("accounts:domain_subdomains", args=[domain.pk]),
                      {"include_subdomains": "1"})
    domain.refresh_from_db()
    assert domain.include_subdomains
    response = alice_client.post(reverse("accounts:domain_remove", args=[domain.pk]), follow=True)
    assert "acme.test removed" in response.content.decode()
    assert not SendingDomain.objects.filter(pk=domain.pk).exists()


def test_the_users_page_marks_an_authorized_domain_the_account_does_not_own(alice_client, cast):
    AuthorizedDomain.objects.create(smtp_user=cast.acme_smtp, domain="lost.test")
    html = alice_client.get(reverse("accounts:smtpuser_detail", args=[cast.acme_smtp.pk])).content.decode()
    assert html.count(">not a verified sending domain</a>") == 1  # lost.test, not acme.test
    assert f'href="{reverse("accounts:domain_list")}?domain=lost.test"' in html
