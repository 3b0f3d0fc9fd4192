"""A broken database costs the client a temporary error, never a false 250."""

from __future__ import annotations

import asyncio
import smtplib

import pytest
from django.db import IntegrityError, OperationalError, connection

from relay.models import Message
from relay.smtp.group_commit import GroupCommit
from tests.smtp_relay import message


class table_gone:
    """A table disappears (as in a broken database) until the block ends."""

    def __init__(self, table: str) -> None:
        self.table = table

    def __enter__(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {self.table} RENAME TO {self.table}_away")

    def __exit__(self, *exc: object) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {self.table}_away RENAME TO {self.table}")


def test_a_database_error_at_login_is_a_temporary_internal_error(relay, cast):
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.ehlo()
        with table_gone("accounts_smtpuser"):
            with pytest.raises(smtplib.SMTPAuthenticationError) as err:
                smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        assert (err.value.smtp_code, err.value.smtp_error) == (
            451, b"4.3.0 Internal error, try again later")
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)  # back to normal


@pytest.mark.postgres
@pytest.mark.parametrize("relay", [{"RELAY_DB_THREADS": 1}], indirect=True)
def test_a_lost_database_connection_answers_451_then_recovers(relay, cast):
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (DATABASE_URL=postgres://...)")
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        smtp.mail("shop@acme.test")
        smtp.rcpt("a@example.net")
        with connection.cursor() as cursor:  # as if PostgreSQL had restarted
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        code, reply = smtp.data(message())
        assert (code, reply) == (451, b"4.3.0 Could not store the message, try again later")
        assert not Message.objects.exists()
        assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
    assert Message.objects.count() == 1


class FakeStore:
    """The relay's store for a group commit: records each group it is given."""

    def __init__(self, error: Exception, bad: object = None) -> None:
        self.error, self.bad, self.groups = error, bad, []

    async def store_messages(self, subs: list[object]) -> list[str]:
        self.groups.append(len(subs))
        if self.bad is None or self.bad in subs:
            raise self.error
        return [f"Q{id(s)}" for s in subs]


def commit_group(relay: FakeStore, subs: list[object]) -> list[object]:
    async def run() -> list[object]:
        commit = GroupCommit(asyncio.get_running_loop(), relay)
        futures = [commit.submit(sub) for sub in subs]
        return await asyncio.gather(*futures, return_exceptions=True)

    return asyncio.run(run())


def test_a_database_that_is_down_fails_the_whole_group_in_one_attempt():
    relay = FakeStore(OperationalError("connection refused"))
    results = commit_group(relay, [object() for _ in range(5)])
    assert relay.groups == [5]
    assert all(isinstance(r, OperationalError) for r in results)


def test_a_message_the_database_refuses_fails_alone_and_the_rest_of_its_group_is_stored():
    bad = object()
    relay = FakeStore(IntegrityError("duplicate key"), bad=bad)
    subs = [object(), bad, object()]
    results = commit_group(relay, subs)
    assert relay.groups == [3, 1, 1, 1]
    assert isinstance(results[1], IntegrityError)
    assert results[0] == f"Q{id(subs[0])}" and results[2] == f"Q{id(subs[2])}"
