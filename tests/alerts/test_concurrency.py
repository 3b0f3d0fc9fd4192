"""Several alert senders at once (several `sendalerts` processes call run_once): every event
alerts once per rule. Real threads, each with its own database connection; on PostgreSQL
this exercises SELECT … FOR UPDATE SKIP LOCKED, on SQLite the serialised writers."""

from __future__ import annotations

import threading

import pytest
from django.core import mail
from django.db import connection

from alerts.models import Alert, AlertEvent, Notification
from alerts.sending import run_once
from tests.alerts.conftest import failed_message, later, make_rule

pytestmark = pytest.mark.django_db(transaction=True)


def run_workers(count: int, passes: int) -> list[BaseException]:
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []
    now = later()

    def work() -> None:
        try:
            barrier.wait(10)
            for _ in range(passes):
                run_once(now=now)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return errors


@pytest.mark.parametrize("workers", [2, 4])
def test_workers_running_at_once_send_each_alert_exactly_once(cast, workers):
    rule = make_rule(cast.acme, email_recipients="ops@acme.test")
    for i in range(30):
        failed_message(cast.acme_smtp, [f"user{i}@example.net"])

    assert run_workers(count=workers, passes=4) == []

    # New accounts start with their owner's default rule; both rules alert once each.
    assert Alert.objects.filter(rule=rule).count() == 1
    assert AlertEvent.objects.filter(rule=rule).count() == 30
    assert AlertEvent.objects.filter(rule=rule, alert__isnull=True).count() == 0
    notifications = Notification.objects.filter(alert__rule=rule)
    assert [(n.target, n.status, n.attempts) for n in notifications] == [("ops@acme.test", "sent", 1)]
    to_ops = [m for m in mail.outbox if m.to == ["ops@acme.test"]]
    assert len(to_ops) == 1
    assert to_ops[0].subject.startswith("[SMTP+] 30 messages could not be delivered (Acme)")
    assert len(mail.outbox) == Notification.objects.count()
