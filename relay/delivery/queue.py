"""Claiming due recipients for delivery, with a lease.

Any number of workers, in any number of processes and machines, share the queue:

- a worker claims due recipients in one short transaction — `SELECT … FOR UPDATE SKIP
  LOCKED` on PostgreSQL (two workers never wait for or take each other's rows); on SQLite
  the IMMEDIATE write transaction serialises claimers — and writes its name and a lease
  expiry on them, then commits;
- the network talk happens after the commit, holding no lock;
- the final update is conditional on the lease (`lease_owner=me`), so a worker that lost
  its lease cannot overwrite the work of the one that took over;
- a worker that dies leaves a lease that expires; the rows are due again after it.

Order: SMTP+ user priority (1 first), then due time. Fresh mail is taken before retries
but a share of every batch is kept for retries, so neither starves the other.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple, cast

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Field, Q
from django.utils import timezone

from relay.models import PENDING_STATUSES, Attempt, Recipient, RecipientStatus

# At most this many recipients of one message are claimed together (one SMTP
# transaction), on top of the batch size.
MAX_SIBLINGS = 100


class Claimed(NamedTuple):
    """A leased recipient: what delivery needs of it, read without building a model."""

    pk: int
    message_id: int
    address: str
    attempts: int
    # RFC 3461 NOTIFY= and ORCPT= as the client gave them ("" when it did not).
    notify: str = ""
    orcpt: str = ""


def new_worker_id() -> str:
    """Unique per worker instance: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def not_leased(now: datetime) -> Q:
    """Rows no live lease holds: no worker is delivering them right now."""
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def _placeholders(values: list[Any]) -> str:
    return ", ".join(["%s"] * len(values))


def _pick(
    cursor: Any, now: Any, limit: int, *, status: str | None = None,
    exclude: list[int] | None = None, messages_of: list[int] | None = None,
) -> list[int]:
    """Ids of due rows, in queue order, locked (skip-locked) where the database can.

    Hand-written SQL: this runs several times per batch, and building the same query
    with the ORM cost more CPU than the database spent answering it.
    """
    if limit <= 0:
        return []
    qn = connection.ops.quote_name
    table = qn(Recipient._meta.db_table)
    where = [
        f"{qn('next_attempt_at')} <= %s",
        f"({qn('lease_until')} IS NULL OR {qn('lease_until')} < %s)",
    ]
    params: list[Any] = [now, now]
    if status is not None:
        where.append(f"{qn('status')} = %s")
        params.append(str(status))
    else:
        where.append(f"{qn('status')} IN (%s, %s)")
        params += [str(p) for p in PENDING_STATUSES]
    if exclude:
        where.append(f"{qn('id')} NOT IN ({_placeholders(exclude)})")
        params += exclude
    if messages_of:
        where.append(
            f"{qn('message_id')} IN (SELECT {qn('message_id')} FROM {table} "  # noqa: S608
            f"WHERE {qn('id')} IN ({_placeholders(messages_of)}))"
        )
        params += messages_of
    lock = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
    sql = (
        f"SELECT {qn('id')} FROM {table} WHERE {' AND '.join(where)} "  # noqa: S608
        f"ORDER BY {qn('priority')}, {qn('next_attempt_at')} LIMIT %s{lock}"
    )
    cursor.execute(sql, [*params, limit])
    return [row[0] for row in cursor.fetchall()]


def claim(owner: str, limit: int, *, lease_seconds: int | None = None) -> list[Claimed]:
    """Lease up to `limit` due recipients (plus the other due recipients of the same
    messages, so a message goes out in one transaction) and return them, by message."""
    now = timezone.now()
    seconds = lease_seconds if lease_seconds is not None else settings.DELIVERY_LEASE_SECONDS
    until = connection.ops.adapt_datetimefield_value(now + timedelta(seconds=seconds))
    at = connection.ops.adapt_datetimefield_value(now)
    reserve = limit // 4  # the share of a batch kept for retries
    with transaction.atomic(), connection.cursor() as cursor:
        ids = _pick(cursor, at, limit - reserve, status=RecipientStatus.QUEUED)
        more_fresh = len(ids) == limit - reserve
        ids += _pick(cursor, at, limit - len(ids), status=RecipientStatus.DEFERRED)
        if len(ids) < limit and more_fresh:
            ids += _pick(cursor, at, limit - len(ids), status=RecipientStatus.QUEUED, exclude=ids)
        if not ids:
            return []
        # A short batch holds every due row the picks could take, siblings included: only
        # a full one can have left some of its messages' recipients behind.
        if len(ids) == limit:
            ids += _pick(cursor, at, MAX_SIBLINGS, exclude=ids, messages_of=ids)
        rows = _lease(cursor, owner, until, ids)
    return sorted((Claimed(*row) for row in rows), key=lambda r: (r.message_id, r.pk))


def _lease(cursor: Any, owner: str, until: Any, ids: list[int]) -> list[tuple[Any, ...]]:
    """Write the lease on rows picked (and locked) in this transaction; return their
    (id, message_id, address, attempts, notify, orcpt)."""
    qn = connection.ops.quote_name
    table = qn(Recipient._meta.db_table)
    columns = ", ".join(
        qn(c) for c in ("id", "message_id", "address", "attempts", "notify", "orcpt"))
    where = f"{qn('id')} IN ({_placeholders(ids)})"
    sql = (
        f"UPDATE {table} SET {qn('lease_owner')} = %s, {qn('lease_until')} = %s "  # noqa: S608
        f"WHERE {where}"
    )
    # PostgreSQL and SQLite 3.35+ return the rows from the UPDATE itself.
    returning = connection.features.can_return_columns_from_insert
    cursor.execute(sql + (f" RETURNING {columns}" if returning else ""), [owner, until, *ids])
    if returning:
        return list(cursor.fetchall())
    cursor.execute(f"SELECT {columns} FROM {table} WHERE {where}", ids)  # noqa: S608
    return list(cursor.fetchall())


def renew(owner: str, ids: list[int], *, lease_seconds: int | None = None) -> set[int]:
    """Extend the lease on rows still held; returns the ids still held."""
    seconds = lease_seconds if lease_seconds is not None else settings.DELIVERY_LEASE_SECONDS
    now = timezone.now()
    held = Recipient.objects.filter(pk__in=ids, lease_owner=owner, status__in=PENDING_STATUSES)
    with transaction.atomic():
        kept = set(held.values_list("pk", flat=True))
        held.update(lease_until=now + timedelta(seconds=seconds))
    return kept


def release(owner: str, ids: list[int]) -> int:
    """Give rows back untouched (shutting down before getting to them)."""
    if not ids:
        return 0
    return Recipient.objects.filter(pk__in=ids, lease_owner=owner).update(
        lease_owner="", lease_until=None
    )


def finish(owner: str, updates: list[tuple[int, dict[str, Any]]]) -> int:
    """Write each recipient's new state (field → value), add one to its attempts and
    clear its lease — only where `owner` still holds the lease. Returns rows updated.

    Hand-written SQL: a batch usually shares one state except the reply text (which
    names the upstream's queue id), so it is one UPDATE with a CASE for the text, where
    the ORM's bulk_update would cost milliseconds per row.
    """
    updated = 0
    with connection.cursor() as cursor:
        for sql, params in _finish_statements(owner, updates):
            cursor.execute(sql, params)
            updated += cursor.rowcount
    return updated


def finish_with_attempts(
    owner: str, updates: list[tuple[int, dict[str, Any]]], attempts: list[dict[str, Any]]
) -> int:
    """`finish()` and the insert of the Attempt rows (field → value) as one statement:
    on PostgreSQL a data-modifying WITH, so an outcome costs one round trip and one
    commit. Returns rows updated. PostgreSQL only (`connection.vendor`)."""
    qn = connection.ops.quote_name
    opts = Attempt._meta
    names = list(attempts[0])
    fields = [cast("Field[Any, Any]", opts.get_field(name)) for name in names]
    rows = ", ".join("(" + ", ".join(["%s"] * len(names)) + ")" for _ in attempts)
    params: list[Any] = [
        field.get_db_prep_save(row[name], connection)
        for row in attempts
        for name, field in zip(names, fields, strict=True)
    ]
    parts = [
        f"a AS (INSERT INTO {qn(opts.db_table)} "  # noqa: S608
        f"({', '.join(qn(str(f.column)) for f in fields)}) VALUES {rows})"
    ]
    for i, (sql, statement_params) in enumerate(_finish_statements(owner, updates)):
        parts.append(f"u{i} AS ({sql} RETURNING 1)")
        params += statement_params
    counts = " + ".join(
        f"(SELECT count(*) FROM u{i})" for i in range(len(parts) - 1)  # noqa: S608
    ) or "0"
    with connection.cursor() as cursor:
        cursor.execute(f"WITH {', '.join(parts)} SELECT {counts}", params)
        (updated,) = cursor.fetchone() or (0,)
        return int(updated)


def _finish_statements(
    owner: str, updates: list[tuple[int, dict[str, Any]]]
) -> list[tuple[str, list[Any]]]:
    """The UPDATEs of `finish()`: one per distinct new state."""
    opts = Recipient._meta
    qn = connection.ops.quote_name
    groups: dict[tuple[Any, ...], tuple[dict[str, Any], list[tuple[int, str]]]] = {}
    for pk, state in updates:
        state = dict(state)
        text = state.pop("last_text", "")
        key = tuple(sorted((k, repr(v)) for k, v in state.items()))
        groups.setdefault(key, (state, []))[1].append((pk, text))
    statements = []
    for state, rows in groups.values():
        sets = [f"{qn('attempts')} = {qn('attempts')} + 1", f"{qn('lease_owner')} = %s",
                f"{qn('lease_until')} = NULL"]
        params: list[Any] = [""]
        for name, value in state.items():
            field = cast("Field[Any, Any]", opts.get_field(name))
            sets.append(f"{qn(str(field.column))} = %s")
            params.append(field.get_db_prep_save(value, connection))
        texts = {text for _, text in rows}
        if len(texts) == 1:
            sets.append(f"{qn('last_text')} = %s")
            params.append(texts.pop())
        else:
            whens = " ".join("WHEN %s THEN %s" for _ in rows)
            sets.append(f"{qn('last_text')} = CASE {qn('id')} {whens} END")
            params += [v for row in rows for v in row]
        ids = [pk for pk, _ in rows]
        # Only quoted column names and placeholders are interpolated; values are params.
        sql = (
            f"UPDATE {qn(opts.db_table)} SET {', '.join(sets)} "  # noqa: S608
            f"WHERE {qn('id')} IN ({', '.join(['%s'] * len(ids))}) "
            f"AND {qn('lease_owner')} = %s"
        )
        statements.append((sql, [*params, *ids, owner]))
    return statements
