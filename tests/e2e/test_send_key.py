"""In a real browser: an admin creates a send key for an SMTP+ user, an application
sends with it over HTTP, and the message is in the console's messages log; the same key
cannot read the management API."""

from __future__ import annotations

import pytest

from relay.models import Message
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.e2e.test_content_security_policy import Visits

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_creates_a_send_key_and_a_message_sent_with_it_is_in_the_log(page, cast):
    visits = Visits(page)
    log_in(page, "bob@acme.test", PASSWORD)
    visits.open("/api-keys/")
    page.fill("#id_name", "Web shop sender")
    page.select_option("#id_smtp_user", str(cast.acme_smtp.pk))
    page.click("button:has-text('Create key')")
    page.wait_for_selector("#new-key")
    visits.note()
    key = page.input_value("#api-key")
    row = page.locator("#api-keys tr", has_text="Web shop sender")
    assert "Send key" in row.inner_text() and cast.acme_smtp.username in row.inner_text()

    headers = {"Authorization": f"Bearer {key}"}
    answer = page.request.post("/api/v1/messages", headers=headers, data={
        "from": "Shop <shop@acme.test>", "to": ["ann@example.net"],
        "subject": "Sent over HTTP", "text": "Hello."})
    assert answer.status == 202, answer.text()
    queue_id = answer.json()["queue_id"]
    assert Message.objects.get(queue_id=queue_id).smtp_user == cast.acme_smtp
    refused = page.request.post("/api/v1/messages", headers=headers, data={
        "from": "ceo@evil.test", "to": ["ann@example.net"], "text": "Hello."})
    assert refused.status == 403 and refused.json()["code"] == "sender_not_authorized"
    assert page.request.get("/api/v1/smtp-users", headers=headers).status == 403

    visits.open("/messages/")
    assert "Sent over HTTP" in page.inner_text("main")
    visits.open("/events/")
    assert "ceo@evil.test" in page.inner_text("main")
    visits.assert_clean()
