"""The relay's lean INSERTs write exactly the rows the ORM would write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import DataError, IntegrityError, transaction

from relay.models import Message, Recipient
from relay.smtp.accept import Submission, parse_headers, store_messages
from relay.smtp.rows import ROWS_PER_STATEMENT, insert_rows
from tests.smtp_relay import message

CREATED = datetime(2026, 3, 1, 12, 30, 45, 123456, tzinfo=UTC)


def message_kwargs(cast, queue_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "account_id": cast.acme.pk, "smtp_user_id": cast.acme_smtp.pk, "queue_id": queue_id,
        "created": CREATED, "envelope_from": "shop@acme.test",
        "header_from": "Shop <shop@acme.test>", "subject": "I love you \u2665",
        "message_id": "<1@acme.test>", "size": 12, "client_ip": "2001:db8::7",
        "client_helo": "app.acme.test", "port": 587, "smtputf8": True,
        "raw": b"\x00\xff8-bit \r\n.\r\n", **extra,
    }


def row_values(model: type, pk: int, *ignore: str) -> dict[str, Any]:
    values = model.objects.filter(pk=pk).values().get()
    for name in ("id", *ignore):
        values.pop(name)
    if isinstance(values.get("raw"), memoryview):
        values["raw"] = bytes(values["raw"])
    return values


@pytest.mark.parametrize("extra", [{}, {"client_ip": None, "raw": None, "smtputf8": False}])
def test_a_message_row_is_the_one_bulk_create_writes(cast, extra):
    with transaction.atomic():
        [(lean_pk,)] = insert_rows(Message, [message_kwargs(cast, "LEAN", **extra)],
                                   returning=("id",))
    [orm] = Message.objects.bulk_create([Message(**message_kwargs(cast, "ORM", **extra))])
    assert row_values(Message, lean_pk, "queue_id") == row_values(Message, orm.pk, "queue_id")
    stored = Message.objects.get(pk=lean_pk)
    assert stored.pruned is False  # a default the row left out
    assert stored.created == CREATED


def test_a_recipient_row_is_the_one_bulk_create_writes(cast):
    msg = Message.objects.create(**message_kwargs(cast, "Q1"))
    kwargs = {"message_id": msg.pk, "account_id": cast.acme.pk,
              "smtp_user_id": cast.acme_smtp.pk, "address": "a@example.net", "priority": 1,
              "created": CREATED, "next_attempt_at": CREATED}
    with transaction.atomic():
        [(lean_pk,)] = insert_rows(Recipient, [kwargs], returning=("id",))
    [orm] = Recipient.objects.bulk_create([Recipient(**kwargs)])
    assert row_values(Recipient, lean_pk) == row_values(Recipient, orm.pk)
    lean = Recipient.objects.get(pk=lean_pk)
    assert (lean.status, lean.attempts, lean.last_code, lean.lease_owner) == ("queued", 0, None, "")


def test_it_returns_the_asked_columns_of_every_row_in_order_across_statements(cast):
    count = ROWS_PER_STATEMENT * 2 + 3
    rows = [message_kwargs(cast, f"Q{n:05d}") for n in range(count)]
    with transaction.atomic():
        returned = insert_rows(Message, rows, returning=("id", "queue_id"))
    assert [q for _, q in returned] == [r["queue_id"] for r in rows]
    assert dict(Message.objects.values_list("id", "queue_id")) == dict(returned)


def test_it_refuses_a_key_that_is_not_a_column(cast):
    with pytest.raises(TypeError, match="subjct"), transaction.atomic():
        insert_rows(Message, [message_kwargs(cast, "Q1", subjct="typo")])
    assert not Message.objects.exists()


def test_a_group_of_messages_gets_each_its_own_recipients(cast):
    def submission(sender: str, recipients: list[str]) -> Submission:
        raw = message(from_=sender)
        return Submission(
            account_id=cast.acme.pk, smtp_user_id=cast.acme_smtp.pk,
            username=cast.acme_smtp.username, priority=2, envelope_from=sender,
            recipients=recipients, raw=raw, client_ip="192.0.2.7", headers=parse_headers(raw),
        )

    ids = store_messages([
        submission("one@acme.test", ["a@example.net", "b@example.net"]),
        submission("two@acme.test", ["c@example.net"]),
    ], "mx.test")
    stored = {m.queue_id: m for m in Message.objects.filter(queue_id__in=ids)}
    assert [stored[i].envelope_from for i in ids] == ["one@acme.test", "two@acme.test"]
    assert sorted(stored[ids[0]].recipients.values_list("address", flat=True)) == [
        "a@example.net", "b@example.net"]
    assert list(stored[ids[1]].recipients.values_list("address", "priority")) == [
        ("c@example.net", 2)]
    assert stored[ids[0]].size == len(bytes(stored[ids[0]].raw))


def sub_for(cast, recipients: list[str], priority: int = 3) -> Submission:
    raw = message()
    return Submission(
        account_id=cast.acme.pk, smtp_user_id=cast.acme_smtp.pk, username=cast.acme_smtp.username,
        priority=priority, envelope_from="shop@acme.test", recipients=recipients, raw=raw,
        headers=parse_headers(raw),
    )


@pytest.mark.django_db(transaction=True)
def test_a_recipient_that_cannot_be_written_leaves_no_message(cast):
    # A negative priority breaks the column's CHECK constraint on every database.
    with pytest.raises(IntegrityError):
        store_messages([sub_for(cast, ["ok@example.net"]), sub_for(cast, ["x@example.net"], -1)])
    assert not Message.objects.exists() and not Recipient.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_recipient_address_over_the_column_length_is_refused_not_cut(cast):
    too_long = "a" * 400 + "@example.net"  # the column holds 320 characters
    with pytest.raises(DataError):
        store_messages([sub_for(cast, ["ok@example.net"]), sub_for(cast, [too_long])])
    assert not Message.objects.exists() and not Recipient.objects.exists()


def test_stored_recipients_are_the_rows_bulk_create_writes(cast):
    [queue_id] = store_messages([sub_for(cast, ["a@example.net"], priority=2)])
    stored = Message.objects.get(queue_id=queue_id).recipients.get()
    [orm] = Recipient.objects.bulk_create([Recipient(
        message_id=stored.message_id, account_id=cast.acme.pk, smtp_user_id=cast.acme_smtp.pk,
        address="a@example.net", priority=2, created=stored.created,
        next_attempt_at=stored.created,
    )])
    assert row_values(Recipient, stored.pk) == row_values(Recipient, orm.pk)


def test_queue_ids_are_sixteen_unambiguous_characters_time_first_and_distinct():
    from relay.smtp.accept import _QUEUE_ALPHABET, new_queue_id

    # Many ids within the same milliseconds: with 5 random characters this clashed
    # about once in a hundred runs of 2,000.
    ids = [new_queue_id() for _ in range(50_000)]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 16 and set(i) <= set(_QUEUE_ALPHABET) for i in ids)
    assert [i[:7] for i in ids] == sorted(i[:7] for i in ids)
