"""The relay's per-message database work on the event loop (PostgreSQL only).

On PostgreSQL the login query and the group-commit store run on the event loop over
psycopg's `AsyncConnection`s, with the very SQL and parameters the synchronous path
builds (`relay.login.login_query()`, `relay.rows.insert_statements()`). That saves the
thread hand-off per job. Everything else (events, heartbeat, last-login writes, hourly
counts) and every other database stay on the relay's thread pool.

A connection that fails in any way is closed and replaced by a new one at the next job;
after a connection-level error the idle ones are dropped too (a restarted server breaks
them all), so a lost database costs each job that meets it a 451, never a false 250.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import psycopg
from django.db import connections

from accounts.credentials import verify_login
from relay.accept import Submission, message_rows, recipient_rows
from relay.login import LoginOutcome, login_followup, login_from_row, login_query, write_login
from relay.rows import insert_statements

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
        # Django's cursor classes are synchronous; take their async twins.
        params.pop("cursor_factory", None)
        server_binding = wrapper.settings_dict["OPTIONS"].get("server_side_binding") is True
        params["cursor_factory"] = psycopg.AsyncCursor if server_binding else psycopg.AsyncClientCursor
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
        """`relay.accept.store_messages()` over this pool: one transaction, the same rows."""
        from relay.models import Message, Recipient

        messages, now = message_rows(subs, hostname)
        inserts = insert_statements(Message, messages, returning=("id", "queue_id"))
        async with self.connection() as conn, conn.transaction():
            ids: dict[object, int] = {}
            for sql, params in inserts:
                cursor = await conn.execute(sql, params)
                ids.update((queue_id, pk) for pk, queue_id in await cursor.fetchall())
            for sql, params in insert_statements(
                Recipient, recipient_rows(subs, messages, ids, now)
            ):
                await conn.execute(sql, params)
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


async def _close(conn: psycopg.AsyncConnection[Any]) -> None:
    with contextlib.suppress(Exception):
        await conn.close()
