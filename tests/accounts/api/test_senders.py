"""/api/v1/smtp-users/{id}/senders: list, add, remove — through accounts.actions.senders,
so the validation and the per-user limit are the console's and the CLI's."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, AuthorizedDomain, AuthorizedEmail
from tests.senders import authorize_email, own

pytestmark = pytest.mark.django_db


def test_it_lists_a_users_senders(acme_reader, cast):
    authorize_email(cast.acme_smtp, "billing@partner.test")
    data = acme_reader.get(f"/smtp-users/{cast.acme_smtp.pk}/senders").json()
    assert [d["domain"] for d in data["domains"]] == ["acme.test"]
    assert [e["email"] for e in data["emails"]] == ["billing@partner.test"]


def test_it_adds_domains_and_addresses_and_audits_with_the_key_name(acme_api, cast):
    own(cast.acme.pk, "xn--bcher-kva.test", include_subdomains=True)
    answer = acme_api.post(f"/smtp-users/{cast.acme_smtp.pk}/senders", {
        "domains": ["bücher.test", "acme.test"], "emails": ["ceo@partner.test"],
        "include_subdomains": True,
    })
    assert answer.status_code == 200
    data = answer.json()
    assert data["added"] == ["bücher.test", "ceo@partner.test"] and data["unchanged"] == ["acme.test"]
    assert AuthorizedDomain.objects.get(smtp_user=cast.acme_smtp, domain="xn--bcher-kva.test").include_subdomains
    event = AuditEvent.objects.get(action="smtpuser.senders_add")
    assert event.actor_label == "API key: acme admin key"


def test_it_refuses_invalid_entries_and_adds_nothing(acme_api, cast):
    answer = acme_api.post(f"/smtp-users/{cast.acme_smtp.pk}/senders",
                           {"domains": ["good.test", "bad..test"], "emails": ["nope"]})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_senders"
    assert "bad..test" in answer.json()["message"]
    assert not AuthorizedDomain.objects.filter(domain="good.test").exists()


def test_it_refuses_a_domain_the_account_does_not_own(acme_api, cast):
    answer = acme_api.post(f"/smtp-users/{cast.acme_smtp.pk}/senders",
                           {"domains": ["bank.test"]})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_senders"
    assert answer.json()["message"] == (
        "bank.test: bank.test is not a sending domain of this account: add it as a sending "
        "domain and verify it first (Sending domains page, or manage.py domain add) "
        "(nothing was changed)")


def test_it_keeps_the_per_user_sender_limit(acme_api, cast, settings):
    settings.SMTPPLUS_MAX_SENDERS_PER_USER = 2
    own(cast.acme.pk, "a.test")
    own(cast.acme.pk, "b.test")
    answer = acme_api.post(f"/smtp-users/{cast.acme_smtp.pk}/senders",
                           {"domains": ["a.test", "b.test"]})
    assert answer.status_code == 422 and answer.json()["code"] == "too_many_senders"
    assert cast.acme_smtp.authorized_domains.count() == 1


def test_it_removes_a_domain_and_an_address(acme_api, cast):
    domain = cast.acme_smtp.authorized_domains.get()
    email = authorize_email(cast.acme_smtp, "x@partner.test")
    base = f"/smtp-users/{cast.acme_smtp.pk}/senders"
    assert acme_api.delete(f"{base}/domains/{domain.pk}").status_code == 204
    assert acme_api.delete(f"{base}/emails/{email.pk}").status_code == 204
    assert not AuthorizedDomain.objects.filter(pk=domain.pk).exists()
    assert not AuthorizedEmail.objects.filter(pk=email.pk).exists()
    assert AuditEvent.objects.filter(action="smtpuser.senders_remove").count() == 2


def test_a_read_only_key_cannot_change_senders(acme_reader, cast):
    domain = cast.acme_smtp.authorized_domains.get()
    base = f"/smtp-users/{cast.acme_smtp.pk}/senders"
    assert acme_reader.post(base, {"domains": ["x.test"]}).status_code == 403
    assert acme_reader.delete(f"{base}/domains/{domain.pk}").status_code == 403
    assert list(cast.acme_smtp.authorized_domains.values_list("domain", flat=True)) == ["acme.test"]


def test_another_accounts_senders_are_a_404(globex_api, cast):
    domain = cast.acme_smtp.authorized_domains.get()
    base = f"/smtp-users/{cast.acme_smtp.pk}/senders"
    assert globex_api.get(base).status_code == 404
    assert globex_api.post(base, {"domains": ["evil.test"]}).status_code == 404
    assert globex_api.delete(f"{base}/domains/{domain.pk}").status_code == 404
    # Globex's own user, Acme's entry id: still not found.
    other = f"/smtp-users/{cast.globex_smtp.pk}/senders/domains/{domain.pk}"
    assert globex_api.delete(other).status_code == 404
    assert AuthorizedDomain.objects.filter(pk=domain.pk).exists()
