"""In a real browser: an owner invites a teammate, who joins through the emailed link."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from accounts.models import Membership, Role
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_invitee_sets_a_password_and_lands_on_the_account_dashboard(page, cast, browser, live_server, settings):
    settings.SMTPPLUS_CONSOLE_URL = live_server.url
    log_in(page, "alice@acme.test", PASSWORD)
    page.click("nav summary:has-text('More')")
    page.click("nav >> text=Members")
    page.fill("#id_email", "dana@example.test")
    page.select_option("#id_role", "viewer")
    page.click("button:has-text('Send invitation')")

    shown = page.input_value("#invite-link")
    (sent,) = mail.outbox
    assert sent.to == ["dana@example.test"]
    emailed = re.search(r"http\S+/invite/\S+/", sent.body).group(0)
    assert emailed == shown
    assert "dana@example.test" in page.inner_text("#invitations")

    # The invitee opens the emailed link in their own browser.
    invitee = browser.new_context()
    invitee.set_default_timeout(10_000)
    dana = invitee.new_page()
    dana.goto(emailed)
    assert "Join Acme" in dana.inner_text("h1")
    dana.fill("#id_password1", "plum tree 42 lantern")
    dana.fill("#id_password2", "plum tree 42 lantern")
    dana.click("button:has-text('Set password and join')")
    dana.wait_for_url(f"{live_server.url}/")
    assert dana.locator("h1").first.inner_text() == "Acme"
    dana.click(".usermenu summary")
    assert dana.inner_text(".usermenu summary") == "dana@example.test"
    assert "Viewer of Acme" in dana.inner_text(".usermenu .menu-items")
    assert Membership.objects.get(account=cast.acme, user__username="dana@example.test").role == Role.VIEWER

    # The link worked once.
    dana.goto(emailed)
    assert dana.inner_text("h1") == "This invitation was already used"
    invitee.close()

    page.reload()
    assert "dana@example.test" in page.inner_text("#members")
    assert "No pending invitations." in page.inner_text("main")
