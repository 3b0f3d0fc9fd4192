"""The relay's store on PostgreSQL: its per-message database work on the event loop.

`PostgresStore` (a `relay.smtp.store.RelayStore`) runs the login query, the RCPT TO
suppression lookup (when `relay.smtp.suppression_cache` has no answer) and the
group-commit store on the event loop over psycopg's `AsyncConnection`s. That saves the
thread hand-off per job. Everything else (events, heartbeat, the limit sync with the
last-login writes, hourly counts, the version check) and every other database stay on
the relay's thread pool.

Both statements are bound on the server (`$1` parameters, bytes sent as they are, not
escaped into the query text) and their text does not depend on the data, so they are
prepared on each connection after two runs and PostgreSQL stops parsing and planning
them (unless RELAY_DB_PREPARE is off, for a connection pooler that cannot keep prepared
statements):
- the login query is `relay.login.login_query()`, the synchronous path's own;
- a group of messages is stored by ONE statement: the Message rows are read from one
  JSON parameter (and their raw bytes from one bytea array, sent as they are), the
  Recipient rows from another JSON parameter, joined to their message by queue id.
  One statement is one transaction in autocommit: no BEGIN/COMMIT round trips, all or
  nothing. It writes the rows `relay.smtp.accept.store_messages()` writes.

Behind a connection pooler in transaction mode that cannot keep prepared statements
(PgBouncer before 1.21, or without `max_prepared_statements`), a statement prepared on one
client connection lands on a server connection another client prepared its own on:
"prepared statement … already exists" or "… does not exist". `check()` finds that out
before the relay listens — a statement prepared on one connection of its own must not be
seen by the next — and refuses to start with a message naming RELAY_DB_PREPARE; a
statement that still fails that way later logs the same advice (and its client gets a
451).

A connection that fails in any way is closed and replaced by a new one at the next job;
after a connection-level error the idle ones are dropped too (a restarted server breaks
them all), so a lost database costs each job that meets it a 451, never a false 250.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import json
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from django.apps import apps
from django.db import connections
from django.db.models import Field, Model

from relay import suppressions
from relay.smtp.accept import Submission, message_rows, recipient_rows
from relay.smtp.login import login_query
from relay.smtp.login_cache import LoginCache
from relay.smtp.store import StoreUnusable, ThreadStore, WantsHourly
from smtpplus.dbthreads import DbThreads

log = logging.getLogger("relay.store")

# What a pooler that hands one server connection to several clients, and does not keep
# their prepared statements apart, makes PostgreSQL answer.
LOST_PREPARED = (psycopg.errors.DuplicatePreparedStatement, psycopg.errors.InvalidSqlStatementName)


def lost_prepared(exc: BaseException) -> bool:
    """Whether `exc` is what a statement prepared on another client's server connection
    (or missing from this one) makes PostgreSQL answer: "already exists", "does not
    exist", or "bind message supplies 3 parameters, but prepared statement … requires 1"
    (another client's statement of the same name)."""
    return isinstance(exc, LOST_PREPARED) or (
        isinstance(exc, psycopg.errors.ProtocolViolation) and "prepared statement" in str(exc))


PREPARE_ADVICE = (
    "the database connection goes through a pooler in transaction mode that does not keep "
    "prepared statements (PgBouncer before 1.21, or without max_prepared_statements): set "
    "RELAY_DB_PREPARE=false"
)


def wanted(alias: str = "default") -> bool:
    """Whether the database `alias` is one this module serves (PostgreSQL)."""
    return connections[alias].vendor == "postgresql"


class AsyncPostgres:
    """A small pool of psycopg `AsyncConnection`s opened from Django's DATABASES.

    Our own rather than psycopg_pool's `AsyncConnectionPool`: on the login query that one
    cost about 40 % more of the relay's CPU per job here (its locks, statistics and
    background tasks), and it would need its own code for "drop the idle connections
    after a connection error" anyway; this one is a semaphore and a list.
    """

    def __init__(self, size: int = 4, alias: str = "default", prepare: bool = True) -> None:
        self.alias = alias
        self.prepare = prepare
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(max(1, size))

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        wrapper = connections[self.alias]
        params = wrapper.get_connection_params()
        # Django's cursor classes are synchronous. Our statements are bound on the server
        # whatever OPTIONS["server_side_binding"] says.
        params["cursor_factory"] = psycopg.AsyncCursor
        # Django turns prepared statements off for poolers that cannot keep them; the
        # relay's own connections prepare theirs (RELAY_DB_PREPARE=false turns it off).
        params["prepare_threshold"] = 2 if self.prepare else None
        conn = await psycopg.AsyncConnection.connect(**params, autocommit=True)
        try:
            # As Django's init_connection_state(): the session time zone.
            tz = wrapper.timezone_name
            if tz and conn.info.parameter_status("TimeZone") != tz:
                await conn.execute("SELECT set_config('TimeZone', %s, false)", [tz])
        except BaseException:
            await conn.close()
            raise
        return conn

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        async with self._slots:
            conn = self._idle.pop() if self._idle else await self._connect()
            try:
                yield conn
            except BaseException as exc:
                # Failed or cancelled mid-query: its state is unknown, never reuse it.
                await _close(conn)
                if self.prepare and lost_prepared(exc):
                    log.error("%s (%s)", PREPARE_ADVICE, exc)
                if isinstance(exc, psycopg.OperationalError):
                    await self.close()
                raise
            if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await _close(conn)
            else:
                self._idle.append(conn)

    async def check_prepare(self) -> None:
        """Raise `StoreUnusable` if a statement prepared on one new connection is seen
        from the next one: both were given the same server connection by a pooler that
        does not keep prepared statements apart. (Directly on PostgreSQL, through a pooler
        in session mode or one that keeps them, each connection has its own.)"""
        if not self.prepare:
            return
        try:
            await self._check_prepare()
        except psycopg.OperationalError as exc:
            # No database to ask: the relay meets that as it would without the check.
            log.warning("could not check how the database keeps prepared statements: %s", exc)

    async def _check_prepare(self) -> None:
        first = await self._connect()
        try:
            second = await self._connect()
            try:
                sql = "SELECT pg_backend_pid()"
                await first.execute(sql, prepare=True)
                try:
                    await second.execute(sql, prepare=True)
                except LOST_PREPARED as exc:
                    # The server connection keeps the probe's statement: drop it there.
                    with contextlib.suppress(psycopg.Error):
                        await first.execute("DEALLOCATE ALL")
                    raise StoreUnusable(f"{PREPARE_ADVICE} ({exc})") from exc
            finally:
                await _close(second)
        finally:
            await _close(first)

    async def close(self) -> None:
        """Close the idle connections (those in use close when their job fails)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            await _close(conn)

    async def fetchone(self, sql: str, params: list[Any]) -> tuple[Any, ...] | None:
        async with self.connection() as conn:
            cursor = await conn.execute(sql, params)
            return await cursor.fetchone()

    async def store_messages(self, subs: list[Submission], hostname: str) -> list[str]:
        """`relay.smtp.accept.store_messages()` over this pool: the same rows, one statement."""
        messages, params = _store_params(subs, hostname)
        async with self.connection() as conn:
            await conn.execute(_store_sql(self.alias), params)
        return [str(m["queue_id"]) for m in messages]


def store_message_now(sub: Submission, hostname: str, alias: str = "default") -> tuple[str, int]:
    """One message stored by the same one statement over Django's connection `alias`
    (synchronous, for the send API): its (queue id, Message id). In autocommit the
    statement is its own transaction; inside `transaction.atomic()` it is part of the
    caller's. Raises what the database raises."""
    messages, params = _store_params([sub], hostname)
    with connections[alias].cursor() as cursor:
        cursor.execute(_store_sql(alias, returning=True), params)
        row = cursor.fetchone()
    assert row is not None  # a submission has at least one recipient
    return str(messages[0]["queue_id"]), int(row[0])


def _store_params(subs: list[Submission], hostname: str
                  ) -> tuple[list[dict[str, object]], list[Any]]:
    """The Message rows of `subs` and the store statement's parameters."""
    messages, now = message_rows(subs, hostname)
    # The Recipient rows name their message by queue id; the statement joins them.
    queue_ids = {m["queue_id"]: m["queue_id"] for m in messages}
    recipients = recipient_rows(subs, messages, queue_ids, now)
    return messages, [
        _json_rows(_MESSAGE, messages),
        [m["raw"] for m in messages],
        _json_rows(_RECIPIENT, recipients),
    ]


class PostgresStore(ThreadStore):
    """`RelayStore` on PostgreSQL: the login query and the store on the event loop over
    an `AsyncPostgres` pool; the occasional hourly count and the version check on the
    relay's database threads, as `ThreadStore` runs them."""

    def __init__(
        self, threads: DbThreads, hostname: str, wants_hourly: WantsHourly,
        size: int = 4, prepare: bool = True, suppression_max_age: float = 2.0,
        login_cache: LoginCache | None = None,
    ) -> None:
        super().__init__(threads, hostname, wants_hourly, suppression_max_age, login_cache)
        self.pool = AsyncPostgres(size, prepare=prepare)

    async def _login_row(self, username: str) -> Sequence[Any] | None:
        return await self.pool.fetchone(*login_query(username, "postgresql"))

    async def store_messages(self, subs: list[Submission]) -> list[str]:
        return await self.pool.store_messages(subs, self.hostname)

    async def _lookup(self, account_id: int, key: str) -> suppressions.Found:
        row = await self.pool.fetchone(*suppressions.lookup_query(account_id, key,
                                                                  "postgresql"))
        return suppressions.found_from_row(row)

    async def check(self) -> None:
        await self.pool.check_prepare()

    async def close(self) -> None:
        await self.pool.close()


_MESSAGE, _RECIPIENT = "relay.Message", "relay.Recipient"


def _model(label: str) -> type[Model]:
    return apps.get_model(label)


@functools.cache
def _fields(label: str) -> tuple[Field[Any, Any], ...]:
    """The columns the statement writes: all but the primary key (and Message.raw,
    which travels as a bytea array of its own)."""
    return tuple(
        f for f in _model(label)._meta.concrete_fields
        if not f.primary_key and not (label == _MESSAGE and f.attname == "raw")
    )


def _json_value(value: object) -> object:
    """The JSON form of a value json.dumps() cannot write (the rows' times)."""
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in the relay's statement")


def _json_rows(label: str, rows: Sequence[dict[str, object]]) -> str:
    """The rows as one JSON array of objects (column name → value, `ord`: the row's
    place), each column's default where a row leaves it out."""
    fields = _fields(label)
    defaults = {
        f.attname: f.get_default() for f in fields if any(f.attname not in r for r in rows)
    }
    out = []
    for ord_, row in enumerate(rows, 1):
        item: dict[str, object] = {"ord": ord_}
        for f in fields:
            item[f.column] = row[f.attname] if f.attname in row else defaults[f.attname]
        out.append(item)
    return json.dumps(out, default=_json_value, ensure_ascii=False)


@functools.cache
def _join_field() -> Field[Any, Any]:
    """Recipient.message: in the statement's recipient rows it holds the queue id."""
    field = _model(_RECIPIENT)._meta.get_field("message")
    assert isinstance(field, Field)
    return field


@functools.cache
def _store_sql(alias: str, returning: bool = False) -> str:
    """INSERT the Message rows (a JSON array, and an array of the raw bytes) and, in the
    same statement, the Recipient rows (a JSON array naming their message by queue id);
    with `returning`, each Recipient row's message id comes back."""
    wrapper = connections[alias]
    q = wrapper.ops.quote_name
    message, recipient = _model(_MESSAGE)._meta, _model(_RECIPIENT)._meta
    queue_id, raw = message.get_field("queue_id"), message.get_field("raw")
    assert isinstance(queue_id, Field) and isinstance(raw, Field)

    def record(fields: Sequence[Field[Any, Any]]) -> str:
        # varchar(n) read as text: the INSERT into the column refuses a value that is too
        # long, as the ORM's would (a cast to varchar(n) would cut it silently).
        types = [str((queue_id if f is _join_field() else f).db_type(wrapper)) for f in fields]
        return ", ".join(
            f"{q(f.column)} {'text' if t.startswith('varchar') else t}"
            for f, t in zip(fields, types, strict=True)
        ) + ", ord integer"

    m_fields, r_fields = _fields(_MESSAGE), _fields(_RECIPIENT)
    m_cols = ", ".join(q(f.column) for f in m_fields)
    picked = ", ".join("m.id" if f is _join_field() else f"r.{q(f.column)}" for f in r_fields)
    # Quoted names from the models only; every value is a parameter.
    return (
        f"WITH m AS (INSERT INTO {q(message.db_table)} ({m_cols}, {q(raw.column)}) "  # noqa: S608
        f"SELECT {', '.join(f'r.{q(f.column)}' for f in m_fields)}, b.raw "
        f"FROM json_to_recordset(%s::json) AS r({record(m_fields)}) "
        f"JOIN unnest(%s::bytea[]) WITH ORDINALITY AS b(raw, ord) ON b.ord = r.ord "
        f"ORDER BY r.ord "
        f"RETURNING {q(message.pk.column)} AS id, {q(queue_id.column)} AS queue_id) "
        f"INSERT INTO {q(recipient.db_table)} ({', '.join(q(f.column) for f in r_fields)}) "
        f"SELECT {picked} FROM json_to_recordset(%s::json) AS r({record(r_fields)}) "
        f"JOIN m ON m.queue_id = r.{q(_join_field().column)} ORDER BY r.ord"
        + (f" RETURNING {q(_join_field().column)}" if returning else "")
    )


async def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):
        await conn.close()
