"""On PostgreSQL, logins and stores run on the event loop, not on the thread pool."""

from __future__ import annotations

import smtplib
import threading

import pytest
from django.db import connection

from relay.models import Message, Recipient
from tests.smtp_relay import message

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("relay", [{"RELAY_DB_THREADS": 1}], indirect=True)
def test_a_busy_thread_pool_does_not_hold_up_logins_or_messages(relay, cast):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")
    username, password = cast.acme_smtp.username, cast.acme_smtp_password
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(username, password)  # writes the log-in time (thread pool), once
    release = threading.Event()
    relay.server.executor.submit(release.wait, 20)  # the only database thread is busy
    try:
        with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
            smtp.login(username, password)
            assert smtp.sendmail("shop@acme.test", ["a@example.net", "b@example.net"],
                                 message()) == {}
    finally:
        release.set()
    stored = Message.objects.get()
    assert stored.raw.startswith(b"Received: from ")
    assert sorted(Recipient.objects.filter(message=stored).values_list("address", flat=True)) \
        == ["a@example.net", "b@example.net"]
