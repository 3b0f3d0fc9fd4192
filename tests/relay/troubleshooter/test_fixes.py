"""The one-click fix: authorizing a rejected sender, then resending."""

from __future__ import annotations

import pytest
from django.urls import reverse

from accounts.actions.domains import add_domain
from accounts.models import AuditEvent, AuthorizedDomain, AuthorizedEmail
from relay.troubleshooter.base import OK, PROBLEM
from relay.troubleshooter.fixes import authorize_sender
from relay.troubleshooter.senders import (
    check_sender_domains,
    check_sender_emails,
)
from smtpplus.addresses import InvalidEntry
from tests.relay.troubleshooter.helpers import (
    relay_sees_changes,
    run,
    send,
    text,
)
from tests.senders import own


def test_authorizing_the_domain_lets_a_resend_through_and_turns_both_checks_ok(relay, cast):
    pw = cast.acme_smtp_password
    own(cast.acme.pk, "example.com", include_subdomains=True)
    assert send(relay, cast.acme_smtp, pw, "info@www.example.com")[0] == 550
    message = authorize_sender(cast.acme_smtp, "domain", "example.com", include_subdomains=True)
    assert message == "example.com and its subdomains is now authorized."
    relay_sees_changes(relay)
    code, reply = send(relay, cast.acme_smtp, pw, "info@www.example.com")
    assert code == 250, reply
    for check in (check_sender_domains, check_sender_emails):
        result = run(check, relay, cast.acme_smtp)
        assert result.status == OK
        assert "1 rejection of the last 24 h now pass" in text(result)
    audit = AuditEvent.objects.get(action="smtpuser.senders_add")
    assert audit.details == {"added_domains": ["example.com"], "include_subdomains": True}


def test_authorizing_one_address_fixes_that_address_only(relay, cast):
    pw = cast.acme_smtp_password
    own(cast.acme.pk, "example.org")
    send(relay, cast.acme_smtp, pw, "info@example.org")
    send(relay, cast.acme_smtp, pw, "jane@example.org")
    authorize_sender(cast.acme_smtp, "email", "info@example.org")
    relay_sees_changes(relay)
    assert send(relay, cast.acme_smtp, pw, "info@example.org")[0] == 250
    result = run(check_sender_emails, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert [a.post["value"] for a in result.fix.actions] == ["jane@example.org"]


def test_a_domain_the_account_does_not_own_is_offered_as_a_sending_domain_not_authorized(
        relay, cast):
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "ceo@bank.test")
    result = run(check_sender_domains, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    [action] = result.fix.actions
    assert action.label == "Add bank.test as a sending domain and verify it"
    assert action.post == {"domain": "bank.test"} and not action.primary
    assert "may be someone spoofing the domain: do not add or authorize it" in result.fix.text
    with pytest.raises(InvalidEntry, match="bank.test is not a sending domain of this account"):
        authorize_sender(cast.acme_smtp, "domain", "bank.test")


def test_authorizing_an_existing_domain_with_subdomains_turns_the_option_on(cast):
    own(cast.acme.pk, "acme.test", include_subdomains=True)
    message = authorize_sender(cast.acme_smtp, "domain", "acme.test", include_subdomains=True)
    assert message == "acme.test and its subdomains are now authorized."
    assert cast.acme_smtp.authorized_domains.get().include_subdomains


@pytest.mark.parametrize("kind,value", [
    ("domain", "a.test b.test"), ("domain", "10.0.0.1"), ("email", "not-an-address"),
    ("domain", "x@y.test"), ("other", "a.test"),
])
def test_authorize_refuses_anything_but_one_valid_entry(cast, kind, value):
    with pytest.raises(InvalidEntry):
        authorize_sender(cast.acme_smtp, kind, value)
    assert not AuditEvent.objects.filter(action="smtpuser.senders_add").exists()


def test_an_unconfirmed_address_is_offered_a_new_confirmation_not_an_authorization(relay, cast):
    entry = AuthorizedEmail.objects.create(smtp_user=cast.acme_smtp, email="me@gmail.test")
    assert send(relay, cast.acme_smtp, cast.acme_smtp_password, "me@gmail.test")[0] == 550
    result = run(check_sender_emails, relay, cast.acme_smtp)
    [action] = result.fix.actions
    assert action.label == "Resend the confirmation to me@gmail.test" and not action.primary
    assert action.url == reverse("accounts:smtpuser_email_resend",
                                 args=[cast.acme_smtp.pk, entry.pk])
    assert "followed the confirmation link mailed to it" in result.fix.text


def test_a_sending_domain_not_verified_yet_links_to_its_page(relay, cast):
    domain = add_domain(cast.acme, "waiting.test")
    AuthorizedDomain.objects.create(smtp_user=cast.acme_smtp, domain="waiting.test")
    assert send(relay, cast.acme_smtp, cast.acme_smtp_password, "news@waiting.test")[0] == 550
    result = run(check_sender_domains, relay, cast.acme_smtp)
    [action] = result.fix.actions
    assert action.label == "Verify waiting.test (publish its record)"
    assert action.url == reverse("accounts:domain_detail", args=[domain.pk])
    assert action.post is None and not action.primary
