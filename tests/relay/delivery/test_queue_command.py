"""`manage.py queue`: list, show, retry, cancel."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import AuditEvent
from relay.models import Attempt, Recipient, RecipientStatus
from tests.fake_upstream import database_url_for_subprocess, queue_message

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("queue", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def queue_state(cast):
    """A delivered, a deferred (with an attempt) and a queued recipient."""
    m = queue_message(cast.acme_smtp, ["ok@example.net", "busy@example.net", "new@example.net"])
    ok, busy, new = m.recipients.order_by("id")
    Recipient.objects.filter(pk=ok.pk).update(status="delivered", attempts=1, finished_at=timezone.now())
    Recipient.objects.filter(pk=busy.pk).update(
        status="deferred", attempts=1, last_code=451, last_enhanced="4.3.0",
        last_text="Mailbox busy", next_attempt_at=timezone.now() + timedelta(minutes=5),
    )
    Attempt.objects.create(
        recipient=busy, upstream="mx.example.net:25", code=451, enhanced="4.3.0",
        text="Mailbox busy", outcome="deferred", duration_ms=12,
    )
    return m, ok, busy, new


def test_list_shows_the_pending_recipients_by_default(queue_state):
    m, ok, busy, new = queue_state

    out = run("list")

    assert f"<{new.address}>" in out and f"<{busy.address}>" in out
    assert ok.address not in out
    assert "451 4.3.0 Mailbox busy" in out
    assert "-- 2 recipient(s)" in out


def test_list_json_has_one_object_per_recipient_with_the_documented_fields(queue_state, cast):
    m, ok, busy, new = queue_state

    lines = run("list", "--json", "--status", "deferred").splitlines()

    [row] = [json.loads(line) for line in lines]
    assert row == {
        "id": busy.pk,
        "message": m.queue_id,
        "account": cast.acme.slug,
        "smtp_user": cast.acme_smtp.username,
        "sender": "shop@acme.test",
        "recipient": "busy@example.net",
        "status": "deferred",
        "attempts": 1,
        "created": row["created"],
        "next_attempt": row["next_attempt"],
        "finished": None,
        "fail_reason": "",
        "last_code": 451,
        "last_enhanced": "4.3.0",
        "last_text": "Mailbox busy",
    }
    assert row["next_attempt"] > timezone.now().isoformat()


def test_list_filters_by_smtp_user(queue_state, cast):
    queue_message(cast.globex_smtp, ["x@example.net"], sender="crm@globex.test")

    out = run("list", "--json", "--status", "all", "--user", cast.globex_smtp.username)

    assert [json.loads(line)["recipient"] for line in out.splitlines()] == ["x@example.net"]
    with pytest.raises(CommandError, match="No SMTP\\+ user with username 'nobody'"):
        run("list", "--user", "nobody")


def test_show_prints_envelope_decoded_headers_and_attempts(cast, queue_state):
    raw = b"From: shop@acme.test\r\nSubject: =?utf-8?Q?I love you =E2=99=A5?=\r\n\r\nHi\r\n"
    m2 = queue_message(cast.acme_smtp, ["bob@example.net"], raw=raw)
    m, ok, busy, new = queue_state

    out = run("show", m2.queue_id)
    assert "Subject: I love you ♥" in out
    assert "<shop@acme.test>" in out

    out = run("show", str(busy.pk))  # a recipient id shows its message
    assert f"Message {m.queue_id}" in out
    assert "mx.example.net:25 deferred: 451 4.3.0 Mailbox busy (12 ms)" in out


def test_retry_by_recipient_id_and_by_message_queue_id(queue_state):
    m, ok, busy, new = queue_state

    assert "1 recipient(s) due" in run("retry", str(busy.pk))
    busy.refresh_from_db()
    assert busy.next_attempt_at <= timezone.now()

    Recipient.objects.filter(pk=busy.pk).update(next_attempt_at=timezone.now() + timedelta(hours=1))
    assert "1 recipient(s) due" in run("retry", m.queue_id.lower())
    assert AuditEvent.objects.filter(action="queue.retry").count() == 2


def test_retry_all_deferred(queue_state, cast):
    other = queue_message(cast.globex_smtp, ["x@example.net"], sender="crm@globex.test")
    other.recipients.update(status="deferred", next_attempt_at=timezone.now() + timedelta(hours=1))

    assert "2 recipient(s) due" in run("retry", "--all-deferred")
    # One audit row per account touched.
    assert set(AuditEvent.objects.filter(action="queue.retry").values_list("account__name", flat=True)) == {"Acme", "Globex"}


def test_cancel_a_message(queue_state):
    m, ok, busy, new = queue_state

    assert "2 recipient(s) cancelled" in run("cancel", m.queue_id)

    assert set(m.recipients.values_list("status", flat=True)) == {"delivered", "cancelled"}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["show", "999999"], "No recipient or message with id 999999"),
        (["retry", "NOSUCHQUEUEID"], "No recipient or message with id NOSUCHQUEUEID"),
        (["cancel", "12;DROP"], "is neither a recipient id nor a message queue id"),
        (["retry"], "give recipient/message ids or --all-deferred"),
    ],
)
def test_bad_ids_are_a_clear_error(queue_state, args, says):
    with pytest.raises(CommandError, match=says):
        run(*args)
    assert Recipient.objects.filter(status=RecipientStatus.CANCELLED).count() == 0


def test_every_unknown_id_is_named_in_one_error(queue_state):
    m, ok, busy, new = queue_state

    with pytest.raises(CommandError) as exc:
        run("cancel", str(new.pk), "999998", "999999")

    assert "No recipient or message with id 999998, 999999" in str(exc.value)
    assert Recipient.objects.get(pk=new.pk).status == RecipientStatus.QUEUED


def test_list_does_not_read_message_bodies(queue_state):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        out = run("list", "--status", "all")

    assert "-- 3 recipient(s)" in out
    assert not any("raw" in q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_from_the_command_line_a_bad_id_exits_1_with_the_error_on_stderr(cast):
    import os

    manage = Path(__file__).resolve().parents[3] / "manage.py"
    result = subprocess.run(
        [sys.executable, str(manage), "queue", "cancel", "424242"],
        env={**os.environ, "DATABASE_URL": database_url_for_subprocess()},
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 1
    assert "No recipient or message with id 424242" in result.stderr
    assert result.stdout == ""
