"""The relay's per-message database work on the event loop (PostgreSQL only).

On PostgreSQL the login query and the group-commit store run on the event loop over
psycopg's `AsyncConnection`s. That saves the thread hand-off per job. Everything else
(events, heartbeat, last-login writes, hourly counts) and every other database stay on
the relay's thread pool.

Both statements are bound on the server (`$1` parameters, bytes sent as they are, not
escaped into the query text) and their text does not depend on the data, so psycopg
prepares them after a few runs and PostgreSQL stops parsing and planning them:
- the login query is `relay.login.login_query()`, the synchronous path's own;
- a group of messages is stored by ONE statement: the Message rows are inserted from
  arrays (`unnest`), and the Recipient rows, joined to them by queue id, in the same
  statement. One statement is one transaction in autocommit: no BEGIN/COMMIT round
  trips, all or nothing. It writes the rows `relay.accept.store_messages()` writes.

A connection that fails in any way is closed and replaced by a new one at the next job;
after a connection-level error the idle ones are dropped too (a restarted server breaks
them all), so a lost database costs each job that meets it a 451, never a false 250.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import psycopg
from django.db import connections
from django.db.models import Field, Model

from accounts.credentials import verify_login
from relay.accept import Submission, message_rows, recipient_rows
from relay.login import LoginOutcome, login_followup, login_from_row, login_query, write_login

RunDb = Callable[..., "asyncio.Future[Any]"]


def wanted(alias: str = "default") -> bool:
    """Whether the database `alias` is one this module serves (PostgreSQL)."""
    return connections[alias].vendor == "postgresql"


class AsyncPostgres:
    """A small pool of psycopg `AsyncConnection`s opened from Django's DATABASES."""

    def __init__(self, size: int = 4, alias: str = "default") -> None:
        self.alias = alias
        self._idle: list[psycopg.AsyncConnection[Any]] = []
        self._slots = asyncio.Semaphore(max(1, size))

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        wrapper = connections[self.alias]
        params = wrapper.get_connection_params()
        # Django's cursor classes are synchronous. Our statements are bound on the server
        # whatever OPTIONS["server_side_binding"] says (its OPTIONS["prepare_threshold"],
        # e.g. None behind a pooler that cannot keep prepared statements, applies).
        params["cursor_factory"] = psycopg.AsyncCursor
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
                if isinstance(exc, psycopg.OperationalError):
                    await self.close()
                raise
            if conn.closed or conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                await _close(conn)
            else:
                self._idle.append(conn)

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
        """`relay.accept.store_messages()` over this pool: the same rows, one statement."""
        messages, now = message_rows(subs, hostname)
        # The Recipient rows name their message by queue id; the statement joins them.
        recipients = recipient_rows(subs, messages, _QueueIds(), now)
        params = _columns_of(_MESSAGE, messages) + _columns_of(_RECIPIENT, recipients)
        async with self.connection() as conn:
            await conn.execute(_store_sql(), params)
        return [str(m["queue_id"]) for m in messages]

    async def log_in(
        self,
        run_db: RunDb,
        username: str,
        password: str,
        client_ip: str | None,
        load_hourly: Callable[[int], bool] | bool,
        logins_written: dict[int, float] | None,
    ) -> LoginOutcome:
        """`relay.login.log_in()` with its one query on this pool; the occasional
        last-login write and hourly count go to `run_db` (the thread pool)."""
        user, policy = login_from_row(await self.fetchone(*login_query(username)))
        result = verify_login(user, password)
        if not result.ok or user is None or policy is None:
            return LoginOutcome(result)
        count, write = login_followup(user, load_hourly, logins_written)
        hourly = None
        if count or write:
            hourly = await run_db(write_login, user.pk, client_ip, count, write)
        return LoginOutcome(result, policy, hourly)


class _QueueIds(dict[object, object]):
    """For `recipient_rows()`: each message's id is its queue id, for the join."""

    def __missing__(self, queue_id: object) -> object:
        return queue_id


_MESSAGE, _RECIPIENT = "relay.Message", "relay.Recipient"


def _model(label: str) -> type[Model]:
    from django.apps import apps

    return apps.get_model(label)


@functools.cache
def _fields(label: str) -> tuple[Field[Any, Any], ...]:
    return tuple(f for f in _model(label)._meta.concrete_fields if not f.primary_key)


def _columns_of(label: str, rows: Sequence[dict[str, object]]) -> list[list[Any]]:
    """One list per column of `label`'s table (as the ORM would write each value, the
    field's default where a row leaves it out)."""
    wrapper = connections["default"]
    columns: list[list[Any]] = []
    for f in _fields(label):
        name = f.attname
        if f is _join_field():  # queue ids for the join, see _store_sql()
            columns.append([row[name] for row in rows])
            continue
        default = f.get_default() if any(name not in row for row in rows) else None
        columns.append([
            f.get_db_prep_save(row[name] if name in row else default, wrapper) for row in rows
        ])
    return columns


@functools.cache
def _join_field() -> Field[Any, Any]:
    """Recipient.message: the column whose array holds queue ids in `_store_sql()`."""
    field = _model(_RECIPIENT)._meta.get_field("message")
    assert isinstance(field, Field)
    return field


@functools.cache
def _store_sql() -> str:
    """INSERT the Message rows from one array per column and, in the same statement, the
    Recipient rows (whose message_id array holds queue ids) joined to them."""
    wrapper = connections["default"]
    q = wrapper.ops.quote_name
    message, recipient = _model(_MESSAGE)._meta, _model(_RECIPIENT)._meta
    queue_id = message.get_field("queue_id")

    def arrays(fields: Sequence[Field[Any, Any]]) -> str:
        types = [(queue_id if f is _join_field() else f).db_type(wrapper) for f in fields]
        # varchar(n) arrays as text[]: a cast to varchar(n) would cut a long value
        # silently; the INSERT into the column refuses it, as the ORM's would.
        return ", ".join(
            f"%s::{'text' if str(t).startswith('varchar') else t}[]" for t in types
        )

    m_fields, r_fields = _fields(_MESSAGE), _fields(_RECIPIENT)
    names = [f"c{i}" for i in range(len(r_fields))]
    picked = ", ".join(
        "m.id" if f is _join_field() else f"r.{n}" for f, n in zip(r_fields, names, strict=True)
    )
    join = names[r_fields.index(_join_field())]
    # Quoted names from the models only; every value is a parameter.
    return (
        f"WITH m AS (INSERT INTO {q(message.db_table)} "  # noqa: S608
        f"({', '.join(q(f.column) for f in m_fields)}) "
        f"SELECT * FROM unnest({arrays(m_fields)}) "
        f"RETURNING {q(message.pk.column)} AS id, {q(queue_id.column)} AS queue_id) "
        f"INSERT INTO {q(recipient.db_table)} ({', '.join(q(f.column) for f in r_fields)}) "
        f"SELECT {picked} FROM unnest({arrays(r_fields)}) WITH ORDINALITY "
        f"AS r({', '.join(names)}, ord) JOIN m ON m.queue_id = r.{join} ORDER BY r.ord"
    )


async def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):
        await conn.close()
