"""Retention never empties the body of mail that is pending when the body is removed,
even if it became pending after the prune picked its batch (an admin's "retry now")."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from relay.delivery import actions
from relay.models import Message
from relay.retention import prune
from tests.fake_upstream import queue_message

pytestmark = pytest.mark.django_db


def test_a_message_retried_while_prune_runs_keeps_its_body(cast):
    old = queue_message(cast.acme_smtp, ["late@example.net"], created=timezone.now() - timedelta(days=40))
    old.recipients.update(status="failed", finished_at=timezone.now())
    retried: list[int] = []

    def retry_after_the_batch_is_chosen(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        if not retried and sql.lstrip().upper().startswith("SELECT") and "relay_message" in sql:
            retried.append(actions.retry_now(old.recipients.all()))
        return result

    with connection.execute_wrapper(retry_after_the_batch_is_chosen):
        prune(30)

    assert retried == [1]
    assert old.recipients.get().status == "queued"
    message = Message.objects.get(pk=old.pk)
    assert not message.pruned and message.raw is not None
