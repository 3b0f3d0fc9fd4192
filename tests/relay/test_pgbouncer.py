"""The relay, its delivery worker and the console through PgBouncer in transaction mode.

A real PgBouncer (`tests/pgbouncer.py`, the configuration the README's scaling recipe
shows: `pool_mode = transaction`, four server connections) stands between every process
and the test database: two `runrelay` nodes with `RELAY_DB_PREPARE=false`, one
`manage.py deliver` worker and the console under gunicorn, each with
`?disable_server_side_cursors=true` in its DATABASE_URL. Messages sent over SMTP to both
nodes and to the send API are accepted and delivered once each; a user's hourly limit
and the failed-login cool-off hold across the nodes (and the console); no process meets
"prepared statement … does not exist" or any other database error; and all of them
together never hold more than the pool's four server connections. A relay started with
RELAY_DB_PREPARE left on refuses to start, and says to turn it off; a statement that
meets the trouble later (past that check) logs the same advice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections

from accounts.actions.api_keys import create_api_key
from accounts.actions.smtp_users import create_smtp_user
from accounts.models import SmtpUser
from relay.models import Message, Recipient, RecipientStatus
from relay.smtp.store_pg import AsyncPostgres, lost_prepared
from tests.fake_upstream import FakeUpstream
from tests.pgbouncer import PgBouncer
from tests.relay.test_scale_out import (
    MANAGE,
    Node,
    await_nodes,
    fail_logins,
    send,
    start_node,
    stop_node,
    wait_until,
)
from tests.senders import authorize
from tests.test_database_unavailable import Console, console_on

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

POOL_SIZE = 4
SYNC_SECONDS = 0.5  # RELAY_LIMITS_SYNC_SECONDS of the nodes
SYNC_WAIT = 2.0  # a few syncs
# What a process says when a pooler mixes up prepared statements, cursors or sessions.
DATABASE_TROUBLE = re.compile(
    r"prepared statement|cursor .* does not exist|Traceback|OperationalError|ProgrammingError",
    re.IGNORECASE,
)


@pytest.fixture
def pgbouncer(tmp_path: Path) -> Iterator[PgBouncer]:
    bouncer = PgBouncer.start(tmp_path, pool_size=POOL_SIZE)
    try:
        yield bouncer
    finally:
        bouncer.stop()


def server_connections() -> int:
    """Connections to the test database other than this test's own."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid()"
        )
        return int(cursor.fetchone()[0])


def api_send(console: Console, key: str, subject: str) -> tuple[int, str]:
    body = json.dumps({"from": "shop@acme.test", "to": ["someone@example.net"],
                       "subject": subject, "text": "Hello"})
    status, _, text = console.request("POST", "/api/v1/messages", body, {
        "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    return status, text


def queue_ids_received(upstream: FakeUpstream) -> Counter[str]:
    ids: Counter[str] = Counter()
    for received in list(upstream.received):
        found = re.search(rb"\(SMTP\+\) with \S+ id (\S+)", received.header_bytes)
        assert found, received.header_bytes
        ids[found.group(1).decode()] += 1
    return ids


def test_two_relays_a_worker_and_the_console_work_through_pgbouncer_in_transaction_mode(
    tmp_path, pgbouncer, upstream, cast,
):
    url = pgbouncer.database_url(disable_server_side_cursors="true")
    through = {"database_url": url, "RELAY_DB_PREPARE": "false",
               "RELAY_LIMITS_SYNC_SECONDS": str(SYNC_SECONDS)}
    args = ("--no-deliver", "--no-domain-check")
    # The load goes out as a user of its own; the limits are tried on acme_smtp.
    bulk, bulk_password = create_smtp_user(cast.acme, name="Acme bulk")
    authorize(bulk, "acme.test")
    _, bulk_key = create_api_key(cast.acme, name="bulk", smtp_user=bulk)
    _, key = create_api_key(cast.acme, name="through pgbouncer", smtp_user=cast.acme_smtp)

    # Everything starts side by side: two nodes, the worker, the console.
    nodes = [start_node(tmp_path, name, host, upstream, *args, wait=False, **through)
             for name, host in (("node-a", "127.0.0.1"), ("node-b", "127.0.0.2"))]
    worker_log = tmp_path / "deliver.log"
    worker = subprocess.Popen(
        [sys.executable, str(MANAGE), "deliver"], cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": url, "RELAY_UPSTREAM": upstream.url(),
             "LOG_LEVEL": "WARNING"},
        stdout=worker_log.open("wb"), stderr=subprocess.STDOUT,
    )
    try:
        with console_on(url, tmp_path) as console:
            nodes[:] = await_nodes(tmp_path, upstream, nodes, *args, **through)
            a, b = nodes
            peak = [0]

            def watch() -> None:
                peak[0] = max(peak[0], server_connections())

            # Load: four clients on kept-open sessions over both nodes, and the send API.
            accepted: list[str] = []
            refused: list[str] = []

            def client(node: Node) -> None:
                with node.smtp() as smtp:
                    smtp.login(bulk.username, bulk_password)
                    for _ in range(8):
                        code, reply = send(smtp)
                        found = re.search(r"queued as (\S+)", reply)
                        if code == 250 and found:
                            accepted.append(found.group(1))
                        else:
                            refused.append(f"{code} {reply}")

            clients = [threading.Thread(target=client, args=(nodes[i % 2],)) for i in range(4)]
            for thread in clients:
                thread.start()
            for i in range(3):
                status, text = api_send(console, bulk_key, f"API {i}")
                assert status == 202, text
                accepted.append(json.loads(text)["queue_id"])
                watch()
            while any(t.is_alive() for t in clients):
                watch()
                time.sleep(0.05)
            assert refused == []
            assert len(accepted) == 35

            def all_delivered() -> bool:
                watch()
                return not Recipient.objects.filter(message__queue_id__in=accepted).exclude(
                    status=RecipientStatus.DELIVERED).exists()

            wait_until(all_delivered, "the worker did not deliver through PgBouncer", timeout=60)
            assert queue_ids_received(upstream) == Counter(dict.fromkeys(accepted, 1))
            # Two relays, a worker and a console: never more than the pool's server
            # connections (PgBouncer made them share).
            assert 0 < peak[0] <= POOL_SIZE, peak[0]

            # A user's hourly limit holds across both nodes and the send API.
            SmtpUser.objects.filter(pk=cast.acme_smtp.pk).update(hourly_limit=7)
            with a.smtp() as on_a, b.smtp() as on_b:
                for smtp in (on_a, on_b):
                    smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
                assert [send(on_a)[0] for _ in range(3)] == [250] * 3
                time.sleep(SYNC_WAIT)  # past one limit sync of node b
                assert [send(on_b)[0] for _ in range(5)] == [250] * 4 + [451]
                time.sleep(SYNC_WAIT)
                assert send(on_a)[0] == 451
            status, text = api_send(console, key, "over the limit")
            assert status == 429, text
            assert Message.objects.filter(smtp_user=cast.acme_smtp).count() == 7

            # The failed-login cool-off too: two failures on each node, four in all.
            fail_logins(a, cast.acme_smtp.username, 2)
            fail_logins(b, cast.acme_smtp.username, 2)
            for node in (a, b):
                wait_until(lambda node=node: node.greeting().startswith("421 4.7.0"),
                           f"{node.name} did not put the client into the cool-off", timeout=10)

            # Django through the pooler beyond requests: a listing that reads with
            # .iterator() (a server-side cursor, unless disable_server_side_cursors).
            listing = subprocess.run(
                [sys.executable, str(MANAGE), "queue", "list", "--status", "all"],
                cwd=settings.BASE_DIR, env={**os.environ, "DATABASE_URL": url},
                capture_output=True, text=True, timeout=60,
            )
            assert listing.returncode == 0, listing.stderr
            assert len(listing.stdout.splitlines()) >= 42, listing.stdout
    finally:
        for proc in [node.proc for node in nodes] + [worker]:
            if proc.poll() is None:
                proc.terminate()
        for node in nodes:
            stop_node(node)
        worker.wait(20)

    logs = {node.name: node.log.read_text() for node in nodes}
    logs["deliver"] = worker_log.read_text()
    logs["console"] = (tmp_path / "console.log").read_text()
    for name, text in logs.items():
        assert not DATABASE_TROUBLE.search(text), f"{name}: {text[-3000:]}"
    # Every process went through PgBouncer, and PgBouncer saw no trouble either.
    bouncer_log = pgbouncer.log()
    assert "login attempt: db=" + connection.settings_dict["NAME"] in bouncer_log
    assert not re.search(r"prepared statement|ERROR", bouncer_log), bouncer_log[-3000:]


def test_a_relay_with_prepared_statements_on_behind_pgbouncer_in_transaction_mode_refuses_to_start(
    tmp_path, pgbouncer, upstream,
):
    node = start_node(tmp_path, "node-a", "127.0.0.1", upstream, "--no-deliver",
                      "--no-domain-check", database_url=pgbouncer.database_url(), wait=False)
    try:
        status = node.proc.wait(30)
    finally:
        stop_node(node)
    log = node.log.read_text()
    assert status != 0
    # It says what is wrong and which setting fixes it, and it never listened.
    assert "pooler in transaction mode" in log, log
    assert "set RELAY_DB_PREPARE=false" in log, log
    assert 'prepared statement "_pg3_0" already exists' in log, log
    assert "the relay cannot use its database as configured" in log, log
    with pytest.raises(OSError):
        node.greeting()


@pytest.fixture
def through_pgbouncer(pgbouncer) -> Iterator[str]:
    """A database alias of the test database through PgBouncer (for the relay's own
    connections, which read only its settings)."""
    alias = "through-pgbouncer"
    connections.settings[alias] = {**connection.settings_dict, "HOST": "127.0.0.1",
                                   "PORT": pgbouncer.port}
    try:
        yield alias
    finally:
        with contextlib.suppress(AttributeError):  # never opened
            del connections[alias]
        del connections.settings[alias]


def test_a_statement_that_meets_another_clients_prepared_statement_logs_to_set_relay_db_prepare_off(
    through_pgbouncer, caplog,
):
    # Past the start-up check (the pool was busy then, say): two relay processes' pools
    # each prepare their first statement, and PgBouncer hands both the same server
    # connection in turn.
    first = AsyncPostgres(1, through_pgbouncer, prepare=True)
    second = AsyncPostgres(1, through_pgbouncer, prepare=True)

    async def run() -> BaseException | None:
        try:
            async with first.connection() as conn:
                await conn.execute("SELECT 1", prepare=True)
            try:
                async with second.connection() as conn:
                    await conn.execute("SELECT 2", prepare=True)
            except psycopg.Error as exc:
                return exc
            return None
        finally:
            await first.close()
            await second.close()

    caplog.set_level(logging.ERROR, logger="relay.store")
    failure = asyncio.run(run())
    assert failure is not None and lost_prepared(failure), failure
    assert "set RELAY_DB_PREPARE=false" in caplog.text
    assert 'prepared statement "_pg3_0" already exists' in caplog.text
