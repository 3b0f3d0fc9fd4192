"""The RelayStore contract: the same tests against the thread-pool store and the
PostgreSQL one (the latter only on PostgreSQL, where CI runs it)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import TypeVar

import psycopg
import pytest
from django.db import DatabaseError, IntegrityError, connection
from django.utils import timezone

from accounts.actions.smtp_users import set_active
from accounts.senders import SenderPolicy
from relay.models import Message, Recipient
from relay.smtp.accept import Submission, parse_headers
from relay.smtp.login import LastLogin, LoginOutcome
from relay.smtp.revocation import Held
from relay.smtp.store import RelayStore, ThreadStore, WantsHourly
from relay.smtp.store_pg import PostgresStore
from smtpplus.dbthreads import DbThreads
from tests.smtp_relay import message

T = TypeVar("T")
# What a store may raise when the database fails or refuses a value: Django's errors on
# the threads, psycopg's on the event loop.
DATABASE_ERRORS = (DatabaseError, psycopg.Error)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(params=["threads", pytest.param("postgres", marks=pytest.mark.postgres)])
def use_store(request) -> Callable[..., T]:
    """Runs `job(store)` on a new loop with a new store of the kind under test."""

    def run(job: Callable[[RelayStore], Awaitable[T]],
            wants_hourly: WantsHourly = lambda user_id: True) -> T:
        async def main() -> T:
            threads = DbThreads(2, "store-contract")
            store: RelayStore = (
                PostgresStore(threads, "relay.test", wants_hourly, 2)
                if request.param == "postgres"
                else ThreadStore(threads, "relay.test", wants_hourly)
            )
            try:
                return await job(store)
            finally:
                await store.close()
                await threads.aclose()

        return asyncio.run(main())

    return run


@contextmanager
def table_gone(table: str) -> Iterator[None]:
    """A table disappears (as in a broken database) until the block ends."""
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {table} RENAME TO {table}_away")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {table}_away RENAME TO {table}")


def submission(cast, sender: str, recipients: list[str], priority: int = 3) -> Submission:
    raw = message(from_=sender)
    return Submission(
        account_id=cast.acme.pk, smtp_user_id=cast.acme_smtp.pk,
        username=cast.acme_smtp.username, priority=priority, envelope_from=sender,
        recipients=recipients, raw=raw, client_ip="192.0.2.7", client_helo="app.acme.test",
        port=2525, headers=parse_headers(raw),
    )


# --- log_in --------------------------------------------------------------------------
def test_a_login_with_the_right_password_gives_the_user_and_its_sender_policy(cast, use_store):
    async def job(store: RelayStore) -> tuple[LoginOutcome, list[LastLogin]]:
        outcome = await store.log_in(cast.acme_smtp.username, cast.acme_smtp_password,
                                     "192.0.2.1")
        return outcome, store.take_logins()

    outcome, logins = use_store(job)
    assert outcome.result.ok
    user = outcome.result.smtp_user
    assert user is not None and user.pk == cast.acme_smtp.pk
    assert user.account.pk == cast.acme.pk
    assert outcome.policy == SenderPolicy.load(cast.acme_smtp)
    assert outcome.hourly_count is None  # no hourly limit, nothing counted
    # The log-in time and IP are kept for the limit sync to write, not written by the login.
    assert [(x.user_id, x.client_ip) for x in logins] == [(cast.acme_smtp.pk, "192.0.2.1")]
    cast.acme_smtp.refresh_from_db()
    assert cast.acme_smtp.last_login_at is None


def test_a_wrong_password_or_an_unknown_user_fails_with_its_reason_and_no_policy(
    cast, use_store
):
    async def job(store: RelayStore) -> list[tuple[str, object]]:
        wrong = await store.log_in(cast.acme_smtp.username, "nope", None)
        unknown = await store.log_in("smtp-nobody", cast.acme_smtp_password, None)
        return [(o.result.reason, o.policy) for o in (wrong, unknown)]

    assert use_store(job) == [("wrong password", None), ("unknown user", None)]
    cast.acme_smtp.refresh_from_db()
    assert cast.acme_smtp.last_login_at is None


def test_a_disabled_user_fails_to_log_in(cast, use_store):
    set_active(cast.acme_smtp, False)
    outcome = use_store(lambda s: s.log_in(cast.acme_smtp.username, cast.acme_smtp_password,
                                           None))
    assert not outcome.result.ok and outcome.result.reason == "user disabled"
    assert outcome.policy is None


def test_the_last_login_is_kept_for_writing_at_most_once_a_minute_per_user(cast, use_store):
    async def job(store: RelayStore) -> list[list[LastLogin]]:
        taken = []
        for ip in ("192.0.2.1", "192.0.2.2"):
            assert (await store.log_in(cast.acme_smtp.username, cast.acme_smtp_password,
                                       ip)).result.ok
            taken.append(store.take_logins())
        return taken

    first, second = use_store(job)
    assert [x.client_ip for x in first] == ["192.0.2.1"] and second == []


def test_logins_a_failed_sync_gives_back_are_taken_again_the_latest_kept(cast, use_store):
    async def job(store: RelayStore) -> list[LastLogin]:
        await store.log_in(cast.acme_smtp.username, cast.acme_smtp_password, "192.0.2.1")
        failed = store.take_logins()
        store.give_back_logins(failed)
        return store.take_logins()

    assert [x.client_ip for x in use_store(job)] == ["192.0.2.1"]


@pytest.mark.parametrize("asked", [True, False])
def test_a_login_counts_the_last_hour_when_the_user_has_a_limit_and_the_relay_asks(
    cast, use_store, asked
):
    cast.acme_smtp.hourly_limit = 10
    cast.acme_smtp.save(update_fields=["hourly_limit"])

    async def job(store: RelayStore) -> int | None:
        await store.store_messages([submission(cast, "shop@acme.test", ["a@example.net"]),
                                    submission(cast, "shop@acme.test", ["b@example.net"])])
        outcome = await store.log_in(cast.acme_smtp.username, cast.acme_smtp_password, None)
        return outcome.hourly_count

    assert use_store(job, wants_hourly=lambda user_id: asked) == (2 if asked else None)


def test_a_database_error_at_login_raises(cast, use_store):
    with table_gone("accounts_smtpuser"), pytest.raises(DATABASE_ERRORS):
        use_store(lambda s: s.log_in(cast.acme_smtp.username, cast.acme_smtp_password, None))


# --- store_messages ------------------------------------------------------------------
def test_a_batch_is_stored_with_its_queue_ids_in_order(cast, use_store):
    ids = use_store(lambda s: s.store_messages([
        submission(cast, "one@acme.test", ["a@example.net", "b@example.net"]),
        submission(cast, "two@acme.test", ["c@example.net"], priority=2),
        submission(cast, "three@acme.test", ["d@example.net"]),
    ]))
    assert len(set(ids)) == 3
    stored = {m.queue_id: m for m in Message.objects.filter(queue_id__in=ids)}
    assert [stored[i].envelope_from for i in ids] == [
        "one@acme.test", "two@acme.test", "three@acme.test"]
    assert list(stored[ids[0]].recipients.order_by("id").values_list("address", flat=True)) \
        == ["a@example.net", "b@example.net"]
    assert list(stored[ids[1]].recipients.values_list("address", "priority")) == [
        ("c@example.net", 2)]
    raw = bytes(stored[ids[0]].raw)
    assert raw.startswith(b"Received: from app.acme.test ([192.0.2.7])\r\n\tby relay.test ")
    assert f" id {ids[0]}\r\n".encode() in raw


def test_a_batch_with_a_message_the_database_refuses_stores_nothing_and_raises(
    cast, use_store
):
    # A negative priority breaks the column's CHECK constraint on every database.
    with pytest.raises((IntegrityError, psycopg.IntegrityError)):
        use_store(lambda s: s.store_messages([
            submission(cast, "ok@acme.test", ["ok@example.net"]),
            submission(cast, "bad@acme.test", ["x@example.net"], priority=-1),
        ]))
    assert not Message.objects.exists() and not Recipient.objects.exists()


def test_a_storage_failure_raises_and_stores_nothing(cast, use_store):
    with table_gone("relay_recipient"), pytest.raises(DATABASE_ERRORS):
        use_store(lambda s: s.store_messages(
            [submission(cast, "shop@acme.test", ["a@example.net"])]))
    assert not Message.objects.exists()


# --- messages_last_hour --------------------------------------------------------------
def test_the_hourly_count_is_the_users_messages_of_the_last_hour(cast, use_store):
    async def job(store: RelayStore) -> tuple[int, int, int]:
        ids = await store.store_messages(
            [submission(cast, "shop@acme.test", [f"{n}@example.net"]) for n in range(3)])
        before = await store.messages_last_hour(cast.acme_smtp.pk)
        await asyncio.to_thread(_age, ids[0])
        return before, await store.messages_last_hour(cast.acme_smtp.pk), \
            await store.messages_last_hour(cast.globex_smtp.pk)

    assert use_store(job) == (3, 2, 0)


def _age(queue_id: str) -> None:
    """Moves a message an hour and a minute into the past (on its own connection)."""
    try:
        Message.objects.filter(queue_id=queue_id).update(
            created=timezone.now() - timedelta(minutes=61))
    finally:
        connection.close()


# --- read_changes --------------------------------------------------------------------
def test_only_users_changed_since_their_sessions_logged_in_are_read_again(cast, use_store):
    def held(user) -> Held:
        user.refresh_from_db()
        return Held(user.username, user.account_id, {user.version})

    seen = {cast.acme_smtp.pk: held(cast.acme_smtp), cast.globex_smtp.pk: held(cast.globex_smtp)}
    set_active(cast.acme_smtp, False)
    changed = use_store(lambda s: s.read_changes(seen))
    assert list(changed) == [cast.acme_smtp.pk]
    user = changed[cast.acme_smtp.pk].user
    assert user is not None and user.active is False


def test_the_suppression_lookup_refuses_only_the_accounts_unexpired_entries(cast, use_store):
    from datetime import timedelta

    from django.utils import timezone

    from relay.models import Suppression

    Suppression.objects.create(account=cast.acme, address="gone@example.net",
                               reason="mailbox_unknown", reply="550 5.1.1 No such user")
    Suppression.objects.create(account=cast.acme, address="old@example.net", reason="manual",
                               expires=timezone.now() - timedelta(seconds=1))

    async def job(store: RelayStore) -> list[str | None]:
        return [
            await store.suppressed(cast.acme.pk, "Gone@EXAMPLE.net"),
            await store.suppressed(cast.globex.pk, "gone@example.net"),
            await store.suppressed(cast.acme.pk, "old@example.net"),
            await store.suppressed(cast.acme.pk, "not an address"),
        ]

    refusal, other_account, expired, nonsense = use_store(job)
    assert refusal is not None and refusal.startswith(
        "550 5.1.1 <Gone@EXAMPLE.net>: recipient is on this account's suppression list since ")
    assert "(mailbox does not exist: 550 5.1.1 No such user)" in refusal
    assert (other_account, expired, nonsense) == (None, None, None)
