"""On PostgreSQL, logins and stores run on the event loop, not on the thread pool."""

from __future__ import annotations

import asyncio
import smtplib
import threading

import pytest
from django.db import connection

from relay.models import Message, Recipient
from relay.smtp.accept import Submission, parse_headers, store_messages
from relay.smtp.login import login_query
from relay.smtp.store_pg import AsyncPostgres
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
    relay.server.db_threads.executor.submit(release.wait, 20)  # the only database thread is busy
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


def _stored(queue_id: str) -> tuple[dict[str, object], list[dict[str, object]]]:
    """A stored message and its recipients, minus what differs between two stores of
    the same submission (ids, queue id, the Received: line that names it)."""
    message = Message.objects.values().get(queue_id=queue_id)
    received_1, received_2, received_3, rest = bytes(message.pop("raw")).split(b"\r\n", 3)
    assert received_1.startswith(b"Received: ")
    message["raw"] = rest
    for key in ("id", "queue_id", "created"):
        message.pop(key)
    recipients = list(Recipient.objects.filter(message__queue_id=queue_id)
                      .order_by("id").values())
    for row in recipients:
        for key in ("id", "message_id", "created", "next_attempt_at"):
            row.pop(key)
    return message, recipients


@pytest.mark.django_db(transaction=True)
def test_the_one_statement_store_writes_the_rows_the_orm_path_writes(cast):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")
    long_id = "<" + "x" * 300 + "@acme.test>"  # longer than a queue id's column
    raw = ("From: Shop <shop@acme.test>\r\nTo: z@example.net\r\n"
           "Subject: =?utf-8?q?Caf=C3=A9?=\r\n"
           f"Message-ID: {long_id}\r\n\r\nBody \u2615\r\n").encode()

    def submission(recipients: list[str], ip: str | None) -> Submission:
        return Submission(
            account_id=cast.acme.pk, smtp_user_id=cast.acme_smtp.pk,
            username=cast.acme_smtp.username, priority=2, envelope_from="shop@acme.test",
            recipients=recipients, raw=raw, client_ip=ip, client_helo="client.example",
            port=2525, smtputf8=True, tls=True, headers=parse_headers(raw),
        )

    group = [submission(["z@example.net", "a@example.net", "m@example.net"], "192.0.2.7"),
             submission(["solo@example.net"], None)]
    orm_ids = store_messages(group, "relay.test")

    async def store() -> list[str]:
        pool = AsyncPostgres(1)
        try:
            return await pool.store_messages(group, "relay.test")
        finally:
            await pool.close()

    async_ids = asyncio.run(store())
    assert len(set(orm_ids + async_ids)) == 4
    for orm_id, async_id in zip(orm_ids, async_ids, strict=True):
        assert _stored(async_id) == _stored(orm_id)
    first, _ = _stored(async_ids[0])
    assert first["message_id"] == long_id and first["client_ip"] == "192.0.2.7"
    # Recipients keep their RCPT order.
    assert [r["address"] for r in _stored(async_ids[0])[1]] == \
        ["z@example.net", "a@example.net", "m@example.net"]


@pytest.mark.parametrize("prepare", [True, False])
@pytest.mark.django_db(transaction=True)
def test_the_login_query_is_prepared_on_the_relay_connections_unless_turned_off(cast, prepare):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")
    async def run() -> list[str]:
        pool = AsyncPostgres(1, prepare=prepare)
        try:
            for _ in range(3):
                row = await pool.fetchone(*login_query(cast.acme_smtp.username))
                assert row is not None and row[1] == cast.acme_smtp.username
            async with pool.connection() as conn:
                cursor = await conn.execute("SELECT statement FROM pg_prepared_statements")
                return [r[0] for r in await cursor.fetchall()]
        finally:
            await pool.close()

    prepared = asyncio.run(run())
    assert any("FROM \"accounts_smtpuser\"" in s for s in prepared) is prepare


@pytest.mark.parametrize("relay", [{"RELAY_DB_PREPARE": False}], indirect=True)
def test_a_relay_without_prepared_statements_still_logs_in_and_queues(relay, cast):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")
    for _ in range(3):
        with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
            smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
            assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
    assert Message.objects.count() == 3
