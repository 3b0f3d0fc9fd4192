"""In a real browser: every destructive action asks first, and a dismissed question
changes nothing."""

from __future__ import annotations

import pytest

from accounts.models import Membership, Role
from alerts.models import AlertRule
from relay.models import Recipient
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.relay.console.test_messages import fail_recipient, make_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def dismiss_next(page) -> list[str]:
    """Dismiss the next dialog and return the list its text is appended to."""
    prompts: list[str] = []
    page.once("dialog", lambda d: (prompts.append(d.message), d.dismiss()))
    return prompts


def test_reset_password_asks_first_and_a_dismissal_keeps_the_password(page, cast):
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto(f"/users/{cast.acme_smtp.pk}/")
    prompts = dismiss_next(page)
    page.click("#reset-password")
    assert prompts == [f"Give {cast.acme_smtp} a new password? The current one stops working within a few seconds."]
    cast.acme_smtp.refresh_from_db()
    assert cast.acme_smtp.get_password() == cast.acme_smtp_password
    assert "/users/" in page.url and "confirm-password" not in page.url


def test_removing_an_authorized_sender_asks_first(page, cast):
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto(f"/users/{cast.acme_smtp.pk}/")
    prompts = dismiss_next(page)
    page.click("button[aria-label='Remove acme.test']")
    assert prompts and "Stop authorizing acme.test?" in prompts[0]
    assert cast.acme_smtp.authorized_domains.filter(domain="acme.test").exists()
    page.once("dialog", lambda d: d.accept())
    page.click("button[aria-label='Remove acme.test']")
    page.wait_for_selector(".flash")
    assert not cast.acme_smtp.authorized_domains.exists()


def test_disabling_an_alert_rule_asks_first(page, cast):
    rule = AlertRule.objects.get(account=cast.acme)
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto("/alerts/")
    prompts = dismiss_next(page)
    page.click("button:has-text('Disable')")
    assert prompts and f"Disable the alert rule “{rule.name}”?" in prompts[0]
    rule.refresh_from_db()
    assert rule.enabled


def test_retrying_a_hard_failed_recipient_warns_that_it_refused_for_good(page, cast):
    message = make_message(cast.acme_smtp, recipients=[
        ("nobody@example.net", "queued"), ("later@example.net", "deferred"),
        ("done@example.net", "delivered")])
    failed = Recipient.objects.get(message=message, address="nobody@example.net")
    fail_recipient(failed, code=550, enhanced="5.1.1", text="User unknown")
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto(f"/messages/{message.pk}/")

    prompts = dismiss_next(page)
    page.locator(f"#recipient-{failed.pk} button", has_text="Retry now").click()
    assert prompts == ["nobody@example.net refused this message permanently (550 5.1.1). "
                       "Retrying sends it again and usually fails the same way unless the "
                       "cause was fixed. Retry anyway?"]
    failed.refresh_from_db()
    assert failed.status == "failed"

    prompts = dismiss_next(page)
    page.click("#retry-message")
    assert prompts and "Retry now the 2 recipients of this message that are not delivered?" in prompts[0]
    assert "1 of them refused it permanently" in prompts[0]
    assert "The 1 delivered recipient does not get it again." in prompts[0]
    assert Recipient.objects.get(address="later@example.net").status == "deferred"

    prompts = dismiss_next(page)
    page.locator(f"#recipient-{failed.pk} ~ section button", has_text="Cancel").first.click()
    assert prompts == ["Cancel delivery to later@example.net?"]
    assert Recipient.objects.get(address="later@example.net").status == "deferred"


def test_changing_a_members_role_asks_first(page, cast):
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto("/members/")
    page.select_option("select[aria-label='Role of bob@acme.test']", "viewer")
    prompts = dismiss_next(page)
    page.locator("tr", has_text="bob@acme.test").locator("button", has_text="Change role").click()
    assert prompts == ["Change the role of bob@acme.test? A lower role takes rights away at once."]
    assert Membership.objects.get(account=cast.acme, user=cast.bob).role == Role.ADMIN
