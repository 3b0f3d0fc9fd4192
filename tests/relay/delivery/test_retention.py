"""Retention: old bodies, attempts and events go; each recipient's outcome stays."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from relay.models import Attempt, EventKind, Message, RelayEvent
from tests.fake_upstream import queue_message

pytestmark = pytest.mark.django_db


def finish(message, status="delivered", **fields):
    message.recipients.update(status=status, finished_at=timezone.now(), attempts=1, **fields)
    for r in message.recipients.all():
        Attempt.objects.create(
            recipient=r, started=message.created, code=250, outcome="delivered", text="Ok"
        )


def test_prunequeue_removes_old_bodies_and_history_but_keeps_outcomes(cast, settings):
    settings.RETENTION_DAYS = 30
    long_ago = timezone.now() - timedelta(days=40)
    old = queue_message(cast.acme_smtp, ["old@example.net"], created=long_ago)
    finish(old, status="failed", last_code=550, last_text="No such user", fail_reason="rejected")
    recent = queue_message(cast.acme_smtp, ["new@example.net"])
    finish(recent)
    # Old but still being retried: its body is needed.
    waiting = queue_message(cast.acme_smtp, ["wait@example.net"], created=long_ago)
    waiting.recipients.update(status="deferred")
    RelayEvent.objects.create(kind=EventKind.AUTH_FAILED, last_seen=long_ago, created=long_ago)
    RelayEvent.objects.create(kind=EventKind.AUTH_FAILED)

    out = StringIO()
    call_command("prunequeue", stdout=out)

    assert "1 message bodies removed, 1 attempts and 1 relay events deleted" in out.getvalue()
    old = Message.objects.get(pk=old.pk)
    assert old.pruned and old.raw is None
    assert old.subject == "Your order"  # the log still shows it
    rcpt = old.recipients.get()
    assert (rcpt.status, rcpt.last_code, rcpt.last_text) == ("failed", 550, "No such user")
    assert rcpt.attempt_set.count() == 0
    assert Message.objects.get(pk=recent.pk).raw is not None
    assert Message.objects.get(pk=waiting.pk).raw is not None
    assert Attempt.objects.filter(recipient__message=recent).count() == 1
    assert RelayEvent.objects.count() == 1


def test_the_days_option_overrides_the_setting(cast):
    m = queue_message(cast.acme_smtp, ["a@example.net"], created=timezone.now() - timedelta(days=3))
    finish(m)

    call_command("prunequeue", "--days", "7", stdout=StringIO())
    assert not Message.objects.get(pk=m.pk).pruned

    call_command("prunequeue", "--days", "2", stdout=StringIO())
    assert Message.objects.get(pk=m.pk).pruned


@pytest.mark.django_db(transaction=True)
def test_a_pruned_message_that_is_retried_fails_with_a_clear_reason(cast, upstream):
    from relay.delivery import actions
    from relay.delivery.worker import deliver_due

    m = queue_message(cast.acme_smtp, ["a@example.net"], created=timezone.now() - timedelta(days=40))
    finish(m, status="failed")
    call_command("prunequeue", stdout=StringIO())
    actions.retry_now(m.recipients.all())

    deliver_due(upstream=upstream.url())

    rcpt = m.recipients.get()
    assert rcpt.status == "failed"
    assert rcpt.last_text == "The message body is no longer stored"
    assert [m for m in upstream.received if m.mail_from] == []  # only the report went out
