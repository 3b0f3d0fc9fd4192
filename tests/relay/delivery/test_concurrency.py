"""Several workers on one queue: nothing lost, nothing delivered twice, and a killed
worker's recipients delivered by another once its lease expires."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from relay.delivery import queue
from relay.delivery.worker import deliver_due
from relay.models import PENDING_STATUSES, Attempt, Recipient, RecipientStatus
from tests.fake_upstream import FakeUpstream, database_url_for_subprocess, queue_message


def due(now) -> QuerySet[Recipient]:
    """Pending recipients whose time has come and that no live lease holds."""
    return Recipient.objects.filter(
        queue.not_leased(now), status__in=PENDING_STATUSES, next_attempt_at__lte=now
    )

pytestmark = pytest.mark.django_db(transaction=True)

MANAGE = Path(__file__).resolve().parents[3] / "manage.py"


def deliver_process(upstream: FakeUpstream, *args: str, **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "RELAY_UPSTREAM": upstream.url(),
        "LOG_LEVEL": "WARNING",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, str(MANAGE), "deliver", *args],
        env=environment,
        cwd=MANAGE.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def require_postgresql() -> None:
    if connection.vendor == "postgresql":
        return
    message = "needs PostgreSQL (DATABASE_URL=postgres://…): SKIP LOCKED is what is tested"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.mark.postgres
def test_four_workers_deliver_two_thousand_recipients_exactly_once(cast, upstream):
    require_postgresql()
    from relay.models import Message

    # 1,000 messages of 2 recipients: contention on both claims and sibling claims.
    now = timezone.now()
    messages = Message.objects.bulk_create(
        [
            Message(
                account=cast.acme,
                smtp_user=cast.acme_smtp,
                queue_id=f"BULK{i:06d}",
                created=now,
                envelope_from="shop@acme.test",
                raw=f"From: shop@acme.test\r\nSubject: n{i}\r\n\r\nHi\r\n".encode(),
            )
            for i in range(1000)
        ]
    )
    Recipient.objects.bulk_create(
        [
            Recipient(
                message=m, account=cast.acme, smtp_user=cast.acme_smtp,
                address=f"user{i}-{j}@example.net", next_attempt_at=now,
            )
            for i, m in enumerate(messages)
            for j in range(2)
        ]
    )

    workers = [deliver_process(upstream, "--once", "--concurrency", "2") for _ in range(4)]
    per_worker = []
    for w in workers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err.decode()
        match = re.search(r"delivered (\d+)", out.decode())
        per_worker.append(int(match.group(1)) if match else 0)

    received = Counter(upstream.recipients_received())
    assert len(received) == 2000
    assert set(received.values()) == {1}
    assert Recipient.objects.filter(status=RecipientStatus.DELIVERED, attempts=1).count() == 2000
    assert Attempt.objects.count() == 2000
    # The workers really shared the queue, and their own counts agree.
    assert sum(per_worker) == 2000
    assert sum(1 for n in per_worker if n > 0) >= 2, per_worker


def test_a_recipient_held_by_a_killed_worker_is_delivered_after_its_lease_expires(
    cast, upstream
):
    upstream.hang_at = "data"  # the first worker never gets an answer to its DATA
    message = queue_message(cast.acme_smtp, ["bob@example.net"])
    doomed = deliver_process(upstream, "--concurrency", "1", DELIVERY_LEASE_SECONDS="3")
    try:
        upstream.wait_for(lambda: len(upstream.data_started) == 1, timeout=30)
        doomed.send_signal(signal.SIGKILL)
        doomed.wait(10)
    finally:
        if doomed.poll() is None:
            doomed.kill()
            doomed.wait(10)
    upstream.hang_at = None

    rcpt = message.recipients.get()
    assert rcpt.status == RecipientStatus.QUEUED
    assert rcpt.lease_owner != ""
    # While the dead worker's lease runs, nobody else takes the recipient…
    if timezone.now() < rcpt.lease_until:
        assert due(timezone.now()).count() == 0
    # …and once it has expired, another worker delivers it.
    time.sleep(max(0.0, (rcpt.lease_until - timezone.now()).total_seconds()) + 0.1)
    stats = deliver_due(upstream=upstream.url())

    assert stats["delivered"] == 1
    rcpt.refresh_from_db()
    assert rcpt.status == RecipientStatus.DELIVERED
    assert upstream.recipients_received() == ["bob@example.net"]
    assert len(upstream.data_started) == 2  # the killed try, then the one that worked
