"""/api/v1/messages: the log with the console's filters and keyset pages, a message
with its recipients and attempts, retry and cancel (audited with the key's name)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import AuditEvent
from relay.models import Recipient, RecipientStatus
from tests.relay.console.test_messages import fail_recipient, make_message

pytestmark = pytest.mark.django_db


def test_it_lists_the_accounts_messages_newest_first(acme_reader, cast):
    old = make_message(cast.acme_smtp, subject="Old", created=timezone.now() - timedelta(hours=1))
    new = make_message(cast.acme_smtp, subject="=?utf-8?Q?Caf=C3=A9?=")
    make_message(cast.globex_smtp, sender="crm@globex.test")
    data = acme_reader.get("/messages").json()
    assert [m["id"] for m in data["items"]] == [new.pk, old.pk]
    assert data["items"][0]["subject"] == "Café"
    assert data["newer"] is None and data["older"] is None


def test_it_filters_like_the_console(acme_reader, cast):
    failed = make_message(cast.acme_smtp, sender="billing@acme.test",
                          recipients=[("x@example.net", RecipientStatus.FAILED)])
    make_message(cast.acme_smtp, sender="shop@acme.test")
    assert [m["id"] for m in acme_reader.get("/messages", status="failed").json()["items"]] == [failed.pk]
    assert [m["id"] for m in acme_reader.get("/messages", sender="billing").json()["items"]] == [failed.pk]
    assert [m["id"] for m in acme_reader.get("/messages", recipient="x@example").json()["items"]] == [failed.pk]


def test_another_accounts_smtp_user_is_not_a_filter(globex_api, cast):
    make_message(cast.acme_smtp)
    answer = globex_api.get("/messages", user=cast.acme_smtp.pk)
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_filters"


def test_it_pages_by_keyset_cursors(acme_reader, cast):
    now = timezone.now()
    made = [make_message(cast.acme_smtp, created=now - timedelta(minutes=i)) for i in range(55)]
    first = acme_reader.get("/messages").json()
    assert len(first["items"]) == 50 and first["older"] and first["newer"] is None
    second = acme_reader.get("/messages", before=first["older"]).json()
    assert [m["id"] for m in second["items"]] == [m.pk for m in made[50:]]
    back = acme_reader.get("/messages", after=second["newer"]).json()
    assert [m["id"] for m in back["items"]] == [m["id"] for m in first["items"]]


def test_it_shows_a_message_with_recipients_and_attempts(acme_reader, cast):
    message = make_message(cast.acme_smtp, recipients=[("a@example.net", RecipientStatus.QUEUED)])
    fail_recipient(message.recipients.get())
    data = acme_reader.get(f"/messages/{message.pk}").json()
    assert data["queue_id"] == message.queue_id
    (recipient,) = data["recipients"]
    assert recipient["status"] == "failed" and recipient["address"] == "a@example.net"
    assert recipient["attempt_log"][0]["code"] == 550
    assert "raw" not in data


def test_it_retries_and_cancels_with_an_audit_row_named_after_the_key(acme_api, cast):
    message = make_message(cast.acme_smtp, recipients=[("a@example.net", RecipientStatus.QUEUED)])
    fail_recipient(message.recipients.get())
    assert acme_api.post(f"/messages/{message.pk}/retry").json() == {"changed": 1}
    assert message.recipients.get().status == RecipientStatus.QUEUED
    recipient = message.recipients.get()
    assert acme_api.post(f"/messages/{message.pk}/cancel", {"recipient": recipient.pk}).json() == {"changed": 1}
    assert message.recipients.get().status == RecipientStatus.CANCELLED
    labels = set(AuditEvent.objects.filter(action__startswith="queue.").values_list("actor_label", flat=True))
    assert labels == {"API key: acme admin key"}


def test_a_read_only_key_cannot_retry_or_cancel(acme_reader, cast):
    message = make_message(cast.acme_smtp, recipients=[("a@example.net", RecipientStatus.QUEUED)])
    assert acme_reader.post(f"/messages/{message.pk}/cancel").status_code == 403
    assert message.recipients.get().status == RecipientStatus.QUEUED


def test_another_accounts_message_is_a_404_for_reading_and_for_actions(globex_api, cast):
    message = make_message(cast.acme_smtp, recipients=[("a@example.net", RecipientStatus.QUEUED)])
    assert globex_api.get(f"/messages/{message.pk}").status_code == 404
    assert globex_api.post(f"/messages/{message.pk}/cancel").status_code == 404
    recipient = message.recipients.get()
    assert Recipient.objects.get(pk=recipient.pk).status == RecipientStatus.QUEUED
    assert globex_api.get("/messages").json()["items"] == []


def test_a_recipient_of_another_message_is_a_404(acme_api, cast):
    one = make_message(cast.acme_smtp, recipients=[("a@example.net", RecipientStatus.QUEUED)])
    other = make_message(cast.acme_smtp, recipients=[("b@example.net", RecipientStatus.QUEUED)])
    answer = acme_api.post(f"/messages/{one.pk}/cancel", {"recipient": other.recipients.get().pk})
    assert answer.status_code == 404
    assert other.recipients.get().status == RecipientStatus.QUEUED
