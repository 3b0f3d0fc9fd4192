"""Browser: the troubleshooter explains a rejected sender domain and fixes it in one click."""

from __future__ import annotations

import base64
import smtplib

import pytest

from accounts.models import AuthorizedDomain
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.relay.troubleshooter.helpers import relay_sees_changes
from tests.senders import own
from tests.smtp_relay import dialog

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def send_as(relay, cast, sender: str) -> int:
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        code, _ = smtp.mail(sender)
        if code == 250:
            smtp.rcpt("someone@example.net")
            code, _ = smtp.data(f"From: {sender}\r\nSubject: Hi\r\n\r\nHi.\r\n".encode())
        return code


def test_an_admin_authorizes_a_rejected_domain_and_the_check_turns_ok(page, relay, cast):
    own(cast.acme.pk, "example.com", include_subdomains=True)  # a domain the account owns
    assert send_as(relay, cast, "news@www.example.com") == 550
    relay.flush()
    log_in(page, "bob@acme.test", PASSWORD)
    page.goto(f"/users/{cast.acme_smtp.pk}/troubleshoot/")
    check = page.locator("#check-sender_domain")
    assert check.get_attribute("data-status") == "problem"
    assert "www.example.com: 1 rejected" in check.inner_text()
    check.get_by_role("button", name="Authorize example.com and its subdomains").click()
    page.wait_for_url("**/troubleshoot/#check-sender_domain")
    assert "example.com and its subdomains is now authorized." in page.locator(".flash").inner_text()
    check = page.locator("#check-sender_domain")
    assert check.get_attribute("data-status") == "ok"
    assert check.locator(".badge").inner_text() == "ok"
    assert page.locator("#check-sender_email").get_attribute("data-status") == "ok"
    relay_sees_changes(relay)  # new logins see the change once the relay's check ran
    assert send_as(relay, cast, "news@www.example.com") == 250


def test_a_domain_the_account_does_not_own_is_offered_as_a_sending_domain(page, relay, cast):
    assert send_as(relay, cast, "ceo@bank.test") == 550
    relay.flush()
    log_in(page, "bob@acme.test", PASSWORD)
    page.goto(f"/users/{cast.acme_smtp.pk}/troubleshoot/")
    check = page.locator("#check-sender_domain")
    assert "may be someone spoofing the domain" in check.inner_text()
    assert check.get_by_role("button", name="Authorize bank.test").count() == 0
    button = check.get_by_role("button", name="Add bank.test as a sending domain and verify it")
    assert button.get_attribute("class") == "secondary"
    button.click()
    page.wait_for_selector("#verification-record")
    assert page.inner_text("h1 .badge") == "unverified"
    assert "_smtpplus.bank.test" in page.inner_text("#verification-record")
    assert send_as(relay, cast, "ceo@bank.test") == 550


def test_an_admin_sends_a_test_message_and_reads_the_conversation(page, relay, cast):
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto(f"/users/{cast.acme_smtp.pk}/troubleshoot/")
    page.fill("#id_sender", "shop@acme.test")
    page.fill("#id_recipient", "someone@example.net")
    page.get_by_role("button", name="Send test message").click()
    outcome = page.locator("#test-outcome")
    assert outcome.inner_text().startswith("Accepted: 250 2.0.0 Ok: queued as ")
    transcript = page.locator("#transcript").inner_text()
    assert "C: AUTH PLAIN ********" in transcript
    assert "S: 235 2.7.0 Authentication successful" in transcript
    assert cast.acme_smtp_password not in page.content()


@pytest.mark.parametrize("relay", [{"RELAY_AUTH_FAILURE_LIMIT": 3}], indirect=True)
def test_a_locked_out_client_is_shown_as_a_problem_and_unblocked(page, relay, cast):
    bad = b"AUTH PLAIN " + base64.b64encode(f"\0{cast.acme_smtp.username}\0wrong".encode())
    assert dialog(relay.host, relay.port, [b"EHLO c", bad, bad, bad])[-1].startswith("421 4.7.0")
    relay.flush()
    log_in(page, "bob@acme.test", PASSWORD)
    page.goto(f"/users/{cast.acme_smtp.pk}/troubleshoot/")
    check = page.locator("#check-lockout")
    assert check.get_attribute("data-status") == "problem"
    assert "Client 127.0.0.1 is locked out until" in check.locator("h2").inner_text()
    assert "is locked out until" in page.inner_text("#summary") + page.inner_text("main")
    check.locator("button", has_text="Unblock 127.0.0.1 now").click()
    page.wait_for_selector(".flash")
    assert "127.0.0.1 is unblocked" in page.inner_text(".flash")
    assert page.locator("#check-lockout").get_attribute("data-status") == "ok"
    # The relay lets the client in again, with the right password.
    deadline = 50
    while deadline:
        try:
            with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
                smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
            break
        except smtplib.SMTPConnectError:
            deadline -= 1
            page.wait_for_timeout(100)
    assert deadline, "the relay kept refusing the client after the unblock"


def test_a_subdomain_of_a_sending_domain_without_subdomains_is_fixed_on_that_domain(
    page, relay, cast
):
    own(cast.acme.pk, "example.com")  # verified, but its subdomains may not be authorized
    AuthorizedDomain.objects.create(smtp_user=cast.acme_smtp, domain="example.com",
                                    include_subdomains=True)
    assert send_as(relay, cast, "news@www.example.com") == 550
    relay.flush()
    log_in(page, "bob@acme.test", PASSWORD)
    page.goto(f"/users/{cast.acme_smtp.pk}/troubleshoot/")
    check = page.locator("#check-sender_domain")
    assert check.get_attribute("data-status") == "problem"
    assert "which does not include subdomains" in check.inner_text()
    assert check.get_by_role("button", name="Authorize example.com and its subdomains").count() == 0
    check.get_by_role("button", name="Let subdomains of example.com be authorized").click()
    page.wait_for_url("**/domains/*/")
    assert "Subdomains of example.com may now be authorized." in page.locator(".flash").inner_text()
    relay_sees_changes(relay)
    assert send_as(relay, cast, "news@www.example.com") == 250
