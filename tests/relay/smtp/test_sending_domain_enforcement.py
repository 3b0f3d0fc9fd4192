"""The relay sends only as domains the account owns: an authorized domain that is not a
verified sending domain of the account, or an address not confirmed, is refused with a
reply that says what to do — through real SMTP, with the proof in the real DNS server."""

from __future__ import annotations

import smtplib

import pytest
from django.utils import timezone

from accounts.actions import domains as domain_actions
from accounts.actions.senders import add_senders
from accounts.models import AuthorizedDomain, AuthorizedEmail, DomainStatus, SendingDomain
from accounts.senders import (
    SUBDOMAINS_NOT_OWNED,
    UNCONFIRMED_ADDRESS,
    UNVERIFIED_DOMAIN,
    SenderPolicy,
)
from relay.models import EventKind, Message, RelayEvent
from tests.smtp_relay import message


def logged_in(relay, cast) -> smtplib.SMTP:
    smtp = smtplib.SMTP(relay.host, relay.port, timeout=10)
    smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    return smtp


def unverified_reply(cast, address: str, domain: str, where: str = "") -> str:
    return (f"5.7.1 Sender <{address}>{where} is authorized for SMTP+ user "
            f"{cast.acme_smtp.username}, but its domain {domain} is not a verified sending "
            "domain of this account: verify it in the console")


def test_an_authorized_domain_that_is_not_a_verified_sending_domain_is_refused(relay, cast):
    # Written past the console's check (a script, the Django admin): still refused.
    AuthorizedDomain.objects.create(smtp_user=cast.acme_smtp, domain="not-owned.test")
    domain_actions.add_domain(cast.acme, "not-owned.test")
    with logged_in(relay, cast) as smtp:
        code, reply = smtp.mail("shop@not-owned.test")
    assert code == 550
    assert reply.decode() == unverified_reply(cast, "shop@not-owned.test", "not-owned.test")
    relay.flush()
    event = RelayEvent.objects.get(kind=EventKind.SENDER_REJECTED)
    assert "is not a verified sending domain of its account" in event.reason


def test_another_accounts_domain_authorized_by_hand_is_refused(relay, cast):
    AuthorizedDomain.objects.create(smtp_user=cast.acme_smtp, domain="globex.test")
    with logged_in(relay, cast) as smtp:
        code, reply = smtp.mail("boss@globex.test")
    assert code == 550
    assert reply.decode() == unverified_reply(cast, "boss@globex.test", "globex.test")


def test_the_from_header_at_an_unverified_domain_is_refused(relay, cast):
    AuthorizedDomain.objects.create(smtp_user=cast.acme_smtp, domain="not-owned.test")
    with logged_in(relay, cast) as smtp:
        assert smtp.mail("shop@acme.test")[0] == 250
        assert smtp.rcpt("someone@example.net")[0] == 250
        code, reply = smtp.data(message(from_="Shop <shop@not-owned.test>"))
    assert code == 550
    assert reply.decode() == unverified_reply(
        cast, "shop@not-owned.test", "not-owned.test", " in the From: header")
    assert not Message.objects.exists()


@pytest.mark.parametrize("relay", [{"session_check_seconds": 3600}], indirect=True)
def test_a_domain_verified_by_its_dns_record_sends_and_a_lapsed_one_is_refused(
        relay, cast, dns_server, settings):
    settings.SMTPPLUS_DOMAIN_LAPSE_GRACE = 0
    domain = domain_actions.add_domain(cast.acme, "proved.test")
    AuthorizedDomain.objects.create(smtp_user=cast.acme_smtp, domain="proved.test")
    dns_server.set_records("proved.test", [("_smtpplus", "TXT", f'"{domain.verification_value}"')])
    domain_actions.check_domain(domain)
    with logged_in(relay, cast) as smtp:
        assert smtp.sendmail("news@proved.test", ["a@example.net"],
                             message(from_="news@proved.test")) == {}
        dns_server.set_records("proved.test", [])
        domain_actions.check_domain(domain)  # missing: the grace period (0 s) starts
        domain_actions.check_domain(domain)  # and is over
        assert SendingDomain.objects.get(pk=domain.pk).status == DomainStatus.LAPSED
        # The session already logged in sees it at its next check (the version bump).
        relay.call(relay.server.session_watch.check)
        code, reply = smtp.mail("news@proved.test")
    assert code == 550 and b"its domain proved.test is not a verified sending domain" in reply


def test_an_address_at_a_domain_the_account_does_not_own_needs_its_confirmation(relay, cast):
    email = AuthorizedEmail.objects.create(smtp_user=cast.acme_smtp, email="me@gmail.test")
    with logged_in(relay, cast) as smtp:
        code, reply = smtp.mail("me@gmail.test")
    assert code == 550
    assert reply.decode() == (
        f"5.7.1 Sender <me@gmail.test> is authorized for SMTP+ user {cast.acme_smtp.username}, "
        "but the address is not confirmed yet: follow the link mailed to it (or resend it "
        "from the console)")
    AuthorizedEmail.objects.filter(pk=email.pk).update(confirmed_at=timezone.now())
    cast.acme_smtp.mark_changed()  # as the confirmation link does
    # A relay process's kept logins see it at its next check (as its open sessions do).
    relay.call(relay.server.session_watch.check)
    with logged_in(relay, cast) as smtp:
        assert smtp.mail("me@gmail.test")[0] == 250


def test_an_address_at_an_owned_domain_needs_no_confirmation(relay, cast):
    AuthorizedDomain.objects.filter(smtp_user=cast.acme_smtp).delete()
    AuthorizedEmail.objects.create(smtp_user=cast.acme_smtp, email="billing@acme.test")
    with logged_in(relay, cast) as smtp:
        assert smtp.mail("billing@acme.test")[0] == 250
        assert smtp.rset()[0] == 250
        assert smtp.mail("shop@acme.test")[0] == 550


def test_with_verification_off_nothing_is_filtered(relay, cast, settings):
    settings.SMTPPLUS_SENDER_VERIFICATION = "off"
    AuthorizedDomain.objects.create(smtp_user=cast.acme_smtp, domain="not-owned.test")
    AuthorizedEmail.objects.create(smtp_user=cast.acme_smtp, email="me@gmail.test")
    with logged_in(relay, cast) as smtp:
        assert smtp.mail("shop@not-owned.test")[0] == 250
        assert smtp.rset()[0] == 250
        assert smtp.mail("me@gmail.test")[0] == 250


# --- the policy, without a socket -------------------------------------------------------

def test_the_decision_tells_authorized_but_unverified_from_not_authorized():
    policy = SenderPolicy.from_entries(
        "u", [("mine.test", False), ("theirs.test", True)],
        [("a@gmail.test", False), ("b@gmail.test", True)],
        owned=[("mine.test", False)], verify=True)
    assert policy.check("x@mine.test").allowed
    theirs = policy.check("x@eu.theirs.test")
    assert (theirs.allowed, theirs.refusal, theirs.domain) == (False, UNVERIFIED_DOMAIN,
                                                             "theirs.test")
    assert policy.check("a@gmail.test").refusal == UNCONFIRMED_ADDRESS
    assert policy.check("b@gmail.test").allowed
    assert policy.check("x@other.test").refusal == "not_authorized"


def test_subdomains_need_a_sending_domain_that_opts_in():
    authorized = [("corp.test", True)]
    closed = SenderPolicy.from_entries("u", authorized, [], owned=[("corp.test", False)],
                                       verify=True)
    assert closed.check("x@corp.test").allowed
    refused = closed.check("x@eu.corp.test")
    assert (refused.refusal, refused.domain) == (SUBDOMAINS_NOT_OWNED, "corp.test")
    assert "the sending domain corp.test does not include subdomains" in refused.reason
    assert "not a verified sending domain" not in refused.reason
    opted = SenderPolicy.from_entries("u", authorized, [], owned=[("corp.test", True)],
                                      verify=True)
    assert opted.check("x@eu.corp.test").allowed
    sub_only = SenderPolicy.from_entries("u", [("eu.corp.test", False)], [],
                                         owned=[("corp.test", True)], verify=True)
    assert sub_only.check("x@eu.corp.test").allowed


# --- adding senders ---------------------------------------------------------------------

def test_adding_a_domain_the_account_does_not_own_is_refused_naming_it_and_what_to_do(cast):
    domain_actions.add_domain(cast.acme, "pending.test")
    result = add_senders(cast.acme_smtp, domains_text="bank.test pending.test globex.test")
    assert result.added_domains == []
    errors = dict(result.domain_errors)
    assert errors["bank.test"] == (
        "bank.test is not a sending domain of this account: add it as a sending domain and "
        "verify it first (Sending domains page, or manage.py domain add)")
    assert "is a sending domain of this account but not verified yet" in errors["pending.test"]
    assert "is not a sending domain of this account" in errors["globex.test"]


def test_a_subdomain_is_refused_unless_its_sending_domain_includes_subdomains(cast):
    result = add_senders(cast.acme_smtp, domains_text="eu.acme.test")
    assert "does not include subdomains: turn that on" in dict(result.domain_errors)["eu.acme.test"]
    domain_actions.set_include_subdomains(SendingDomain.objects.get(domain="acme.test"), True)
    assert add_senders(cast.acme_smtp, domains_text="eu.acme.test").added_domains == ["eu.acme.test"]


def test_an_address_at_a_domain_not_owned_is_saved_pending(cast):
    result = add_senders(cast.acme_smtp, emails_text="me@gmail.test billing@acme.test")
    assert result.added_emails == ["me@gmail.test", "billing@acme.test"]
    assert result.pending_emails == ["me@gmail.test"]


@pytest.mark.parametrize("setting", ["off"])
def test_with_verification_off_any_domain_can_be_authorized(cast, settings, setting):
    settings.SMTPPLUS_SENDER_VERIFICATION = setting
    result = add_senders(cast.acme_smtp, domains_text="bank.test", emails_text="me@gmail.test")
    assert result.added_domains == ["bank.test"] and result.pending_emails == []
