"""Removing a sending domain removes the authorizations that rest on it — the SMTP+
users' authorized domains at it and its subdomains, and the addresses at them never
confirmed by their link — with an audit row per user; the console says so before the
button is pressed; the console, `manage.py domain remove` and the API do the same; and
the relay refuses those senders (new logins once its check of kept logins has run)."""

from __future__ import annotations

import json
import smtplib
from io import StringIO

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.actions.smtp_users import create_smtp_user
from accounts.models import AuditEvent, AuthorizedDomain, AuthorizedEmail, SendingDomain
from tests.api.conftest import ApiClient, key_for
from tests.conftest import login
from tests.senders import authorize, authorize_email, own

GOES = {("Acme web shop", "example.com"), ("Acme web shop", "mail.example.com"),
        ("Acme web shop", "news@example.com"), ("Acme CRM", "example.com")}


@pytest.fixture
def example(cast):
    """example.com (with subdomains) authorized in several ways for two Acme users, and
    what must survive its removal: an address its owner confirmed, a subdomain that is a
    sending domain of its own, and another account's authorization."""
    shop = cast.acme_smtp
    crm, crm_password = create_smtp_user(cast.acme, name="Acme CRM")
    domain = own(cast.acme.pk, "example.com", include_subdomains=True)
    authorize(shop, "example.com", include_subdomains=True)
    AuthorizedDomain.objects.create(smtp_user=shop, domain="mail.example.com")
    AuthorizedEmail.objects.create(smtp_user=shop, email="news@example.com")  # owned: no link
    authorize_email(shop, "ceo@example.com", confirmed_at=timezone.now())  # confirmed by link
    authorize(shop, "eu.example.com")  # a sending domain of its own
    AuthorizedDomain.objects.create(smtp_user=crm, domain="example.com")
    # Another account's entry (refused by the relay: Globex does not own it) is not Acme's
    # to remove.
    AuthorizedDomain.objects.create(smtp_user=cast.globex_smtp, domain="example.com")
    return domain, crm, crm_password


def _left(cast) -> set[tuple[str, str]]:
    rows = {(d.smtp_user.name, d.domain) for d in AuthorizedDomain.objects.select_related("smtp_user")}
    rows |= {(e.smtp_user.name, e.email) for e in AuthorizedEmail.objects.select_related("smtp_user")}
    return rows


def _assert_removed(cast) -> None:
    assert _left(cast) == {("Acme web shop", "acme.test"), ("Acme web shop", "ceo@example.com"),
                           ("Acme web shop", "eu.example.com"), ("Globex CRM", "globex.test"),
                           ("Globex CRM", "example.com")}
    audits = {e.target_label: e.details for e in
              AuditEvent.objects.filter(action="smtpuser.senders_remove")}
    shop, crm = cast.acme_smtp.username, AuditEvent.objects.filter(
        action="smtpuser.senders_remove").exclude(target_label=cast.acme_smtp.username).get().target_label
    assert audits[shop] == {"because": "sending domain example.com removed",
                            "removed_domains": ["example.com", "mail.example.com"],
                            "removed_emails": ["news@example.com"]}
    assert audits[crm] == {"because": "sending domain example.com removed",
                           "removed_domains": ["example.com"]}
    removal = AuditEvent.objects.get(action="domain.remove")
    assert removal.details["removed_authorizations"] == 4


def _mail_from(relay, user, password, sender) -> int:
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(user.username, password)
        return smtp.mail(sender)[0]


def test_the_console_says_what_goes_then_removes_it_and_the_relay_refuses_those_senders(
    relay, cast, client, example
):
    domain, crm, crm_password = example
    shop, shop_pw = cast.acme_smtp, cast.acme_smtp_password
    assert _mail_from(relay, shop, shop_pw, "info@mail.example.com") == 250
    login(client, cast.alice)
    page = client.get(reverse("accounts:domain_detail", args=[domain.pk])).content.decode()
    assert "also removes 4 authorizations that rest on it" in page
    for shown in ("example.com — " + shop.username, "mail.example.com — " + shop.username,
                  "news@example.com — " + shop.username, "example.com — " + crm.username):
        assert shown in page
    assert "ceo@example.com" not in page.split('id="removal"')[1]
    assert "and 4 authorizations at it are removed." in page  # the confirm prompt

    response = client.post(reverse("accounts:domain_remove", args=[domain.pk]), follow=True)
    assert "Authorizations removed with it: example.com" in response.content.decode()
    _assert_removed(cast)
    relay.flush()
    relay.call(relay.server.session_watch.check)  # what a new login sees within ~2 s
    for sender in ("info@example.com", "info@mail.example.com", "news@example.com"):
        assert _mail_from(relay, shop, shop_pw, sender) == 550, sender
    assert _mail_from(relay, crm, crm_password, "info@example.com") == 550
    assert _mail_from(relay, shop, shop_pw, "ceo@example.com") == 250
    assert _mail_from(relay, shop, shop_pw, "x@eu.example.com") == 250


def test_the_command_line_removes_the_same_and_prints_them(cast, example):
    out = StringIO()
    call_command("domain", "remove", "example.com", "--account", "acme", stdout=out)
    data = json.loads(out.getvalue())
    assert {(r["smtp_user"], r["sender"]) for r in data["removed_authorizations"]} == {
        (cast.acme_smtp.username, "example.com"), (cast.acme_smtp.username, "mail.example.com"),
        (cast.acme_smtp.username, "news@example.com"), (example[1].username, "example.com")}
    _assert_removed(cast)


def test_the_api_removes_the_same_and_answers_with_them(cast, example):
    api = ApiClient(key_for(cast.acme))
    response = api.delete(f"/sending-domains/{example[0].pk}")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["domain"] == "example.com" and body["removed"] is True
    assert len(body["removed_authorizations"]) == 4
    _assert_removed(cast)
    assert not SendingDomain.objects.filter(account=cast.acme, domain="example.com").exists()


def test_the_api_does_not_remove_another_accounts_domain(cast, example):
    api = ApiClient(key_for(cast.globex))
    assert api.delete(f"/sending-domains/{example[0].pk}").status_code == 404
    assert SendingDomain.objects.filter(pk=example[0].pk).exists()


def test_with_sender_verification_off_authorizations_stay(cast, example, settings):
    settings.SMTPPLUS_SENDER_VERIFICATION = "off"
    before = _left(cast)
    call_command("domain", "remove", "example.com", "--account", "acme", stdout=StringIO())
    assert _left(cast) == before
