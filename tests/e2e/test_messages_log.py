"""In a real browser: a failed message in the log, its reason, and retry now."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent
from relay.models import Recipient
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.relay.console.test_messages import fail_recipient, make_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_sees_why_a_message_failed_and_requeues_it(page, cast):
    message = make_message(cast.acme_smtp, subject="=?utf-8?Q?I love you =E2=99=A5?=",
                           recipients=[("nobody@example.net", "queued")])
    recipient = Recipient.objects.get(message=message)
    fail_recipient(recipient, code=550, enhanced="5.1.1",
                   text="5.1.1 <nobody@example.net>: Recipient address rejected: User unknown")

    log_in(page, "alice@acme.test", PASSWORD)
    page.click("nav >> text=Messages")
    row = page.locator("table.messages-log tbody tr").first
    assert "Failed" in row.locator(".badge.failed").inner_text()
    assert "550 5.1.1" in row.inner_text()
    assert "Recipient address rejected: User unknown" in row.locator(".reason").inner_text()
    row.locator("a.subject").click()

    assert page.locator("h1.subject").inner_text() == "I love you ♥"
    section = page.locator(f"#recipient-{recipient.pk}")
    assert "Recipient address rejected: User unknown" in section.locator("table.attempts").inner_text()
    # A hard-failed recipient asks first (tests/e2e/test_confirmations.py).
    page.once("dialog", lambda d: d.accept())
    section.locator("button", has_text="Retry now").click()

    page.wait_for_selector(f"#recipient-{recipient.pk} .badge.queued")
    assert "1 recipient(s) queued for delivery now." in page.locator(".flash").inner_text()
    recipient.refresh_from_db()
    assert recipient.status == "queued"
    assert AuditEvent.objects.filter(action="queue.retry", actor=cast.alice).exists()
