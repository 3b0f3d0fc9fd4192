"""In a real browser: an admin finds a suppressed address and removes it; mail to it is
accepted again."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from relay import suppressions
from relay.models import Suppression
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_searches_the_list_and_removes_an_address_after_confirming(page, cast):
    Suppression.objects.create(account=cast.acme, address="gone@example.net",
                               reason="mailbox_unknown", reply="550 5.1.1 No such user")
    Suppression.objects.create(account=cast.acme, address="other@example.net", reason="manual")
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto("/suppressions/")
    page.fill("#id_q", "gone")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(lambda url: "q=gone" in url)
    rows = page.locator("table.suppressions tbody tr")
    assert rows.count() == 1
    assert "550 5.1.1 No such user" in rows.first.inner_text()

    prompts: list[str] = []
    page.once("dialog", lambda d: (prompts.append(d.message), d.accept()))
    page.click("button[aria-label='Remove gone@example.net']")
    page.wait_for_selector(".flash")
    assert prompts == ["Remove gone@example.net from the suppression list? Mail to it is sent again."]
    assert "Removed gone@example.net" in page.inner_text(".flash")
    assert "q=gone" in page.url  # back on the same search
    assert suppressions.refusal_for(cast.acme.pk, "gone@example.net") is None
    assert Suppression.objects.filter(address="other@example.net").exists()
    event = AuditEvent.objects.get(action="suppression.removed")
    assert event.actor == cast.alice and event.details == {"addresses": ["gone@example.net"]}


def test_a_dismissed_confirmation_keeps_the_address(page, cast):
    Suppression.objects.create(account=cast.acme, address="gone@example.net", reason="manual")
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto("/suppressions/")
    page.once("dialog", lambda d: d.dismiss())
    page.click("button[aria-label='Remove gone@example.net']")
    assert Suppression.objects.filter(address="gone@example.net").exists()


def test_an_admin_sends_a_users_delivery_reports_to_the_it_staff(page, cast):
    from relay.models import DsnSettings

    log_in(page, "alice@acme.test", PASSWORD)
    page.goto(f"/users/{cast.acme_smtp.pk}/")
    page.click("#dsn-settings-link")
    page.check("input[name=mode][value=address]")
    page.fill("#id_dsn_address", "it@acme.test")
    page.click("form[aria-label='Delivery reports'] button[type=submit]")
    page.wait_for_selector(".flash")
    assert "Delivery report settings saved." in page.inner_text(".flash")
    saved = DsnSettings.objects.get(smtp_user=cast.acme_smtp)
    assert (saved.mode, saved.address) == ("address", "it@acme.test")
    assert page.is_checked("input[name=mode][value=address]")
