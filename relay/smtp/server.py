"""The relay server: listeners, group commit, and the process's shared state.

One `RelayServer` per process: it binds every configured port with
`loop.create_server()` (not aiosmtpd's `Controller`, which costs a thread per port),
owns the thread pool that runs the database work (on PostgreSQL the login query and
the store run on the event loop instead, see `relay.asyncdb`), the in-memory limits, the
event buffer and the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any, TypeVar

import psycopg
from django.conf import settings
from django.db import DataError, IntegrityError, connections

from relay import nodes
from relay.listen import Listener, parse_listen
from relay.models import EventKind
from relay.smtp import asyncdb, cooloffs, revocation
from relay.smtp.accept import Submission, store_messages
from relay.smtp.events import EventBuffer, write_events
from relay.smtp.handler import TOO_MANY_CONNECTIONS, RelayHandler, cooloff_reply
from relay.smtp.limits import ConnectionLimiter, HourlyLimits, LoginFailures
from relay.smtp.protocol import ImplicitTLS, RelaySMTP, quiet_aiosmtpd_logs
from relay.smtp.tls import server_context
from smtpplus.dbthreads import prepare_db_connection

log = logging.getLogger("relay.server")
T = TypeVar("T")


class NothingBound(RuntimeError):
    """None of the configured listeners could be bound."""


@dataclass
class RelayConfig:
    hostname: str
    listen: str
    listen_tls: str
    tls_cert: str
    tls_key: str
    require_tls: bool
    max_message_size: int
    max_recipients: int
    idle_timeout: int
    tls_handshake_timeout: float
    max_connections_per_ip: int
    auth_failure_limit: int
    auth_failure_window: int
    auth_cooloff: int
    db_threads: int
    # PostgreSQL: prepare the login and store statements on the relay's connections.
    db_prepare: bool = True
    reuse_port: bool = False
    heartbeat_seconds: float = nodes.HEARTBEAT_SECONDS
    # Seconds that sessions in flight get to finish after a stop request.
    stop_grace: float = 10.0
    # How often logged-in sessions are checked for admin changes (relay.revocation).
    session_check_seconds: float = revocation.CHECK_SECONDS

    @classmethod
    def from_settings(cls, **overrides: Any) -> RelayConfig:
        """From Django settings; overrides by setting name (RELAY_MAX_RECIPIENTS=2) or
        by field name (max_recipients=2)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f"RELAY_{f.name.upper()}"
            if hasattr(settings, name):
                values[f.name] = getattr(settings, name)
        for key, value in overrides.items():
            field_name = key.removeprefix("RELAY_").lower()
            if field_name not in {f.name for f in fields(cls)}:
                raise TypeError(f"unknown relay setting {key}")
            values[field_name] = value
        given = {key.removeprefix("RELAY_").lower() for key in overrides}
        if "tls_cert" in given and "require_tls" not in given:
            # As in settings: TLS is required by default once a certificate is set.
            values["require_tls"] = bool(values.get("tls_cert"))
        return cls(**values)


async def cancel_remaining_tasks() -> None:
    """Cancel what is left on the loop (closed sessions' tasks) before closing it."""
    tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def raise_open_file_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard limit (one fd per listener)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            return hard
    return soft


def _db_job(fn: Callable[..., T], *args: Any) -> T:
    prepare_db_connection()
    return fn(*args)


# What one message of a group can cause (a value the database refuses), as Django and,
# on the event-loop path, psycopg raise it.
_BAD_MESSAGE = (IntegrityError, DataError, psycopg.IntegrityError, psycopg.DataError)


class GroupCommit:
    """Stores messages with as few transactions as the load allows.

    A message is written at once if no transaction is under way; messages that finish
    DATA during one wait and go into the next transaction together. Each client still
    gets its 250 only after the transaction holding its message has committed.
    """

    MAX_BATCH = 100

    def __init__(self, relay: RelayServer) -> None:
        self.relay = relay
        self.writing = False
        self.pending: list[tuple[Submission, asyncio.Future[str]]] = []

    def submit(self, submission: Submission) -> asyncio.Future[str]:
        future: asyncio.Future[str] = self.relay.loop.create_future()
        self.pending.append((submission, future))
        if not self.writing:
            self.writing = True
            self.relay.loop.create_task(self._write())
        return future

    async def _write(self) -> None:
        hostname = self.relay.config.hostname
        try:
            while self.pending:
                batch = self.pending[: self.MAX_BATCH]
                del self.pending[: self.MAX_BATCH]
                try:
                    ids = await self.relay.store_now([s for s, _ in batch], hostname)
                except Exception as exc:
                    if len(batch) == 1 or not isinstance(exc, _BAD_MESSAGE):
                        # The database itself failed (down, full, …): one attempt per
                        # message would only hammer it, every client gets its 451 now.
                        for _, future in batch:
                            _settle(future, exc=exc)
                        continue
                    # One bad message must not fail the others: retry them one by one.
                    for submission, future in batch:
                        try:
                            ids = await self.relay.store_now([submission], hostname)
                        except Exception as one_exc:
                            _settle(future, exc=one_exc)
                        else:
                            _settle(future, ids[0])
                    continue
                for (_, future), queue_id in zip(batch, ids, strict=True):
                    _settle(future, queue_id)
        finally:
            self.writing = False


def _settle(future: asyncio.Future[str], result: str = "", exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


class RelayServer:
    def __init__(self, config: RelayConfig, loop: asyncio.AbstractEventLoop | None = None) -> None:
        quiet_aiosmtpd_logs()
        self.config = config
        self.loop = loop or asyncio.get_event_loop()
        self.handler = RelayHandler(self)
        self.executor = ThreadPoolExecutor(max(1, config.db_threads), "relay-db")
        # PostgreSQL: logins and stores on the event loop (see relay.asyncdb).
        self.asyncdb = asyncdb.AsyncPostgres(
            max(1, config.db_threads), prepare=config.db_prepare) if asyncdb.wanted() else None
        self.connections = ConnectionLimiter(config.max_connections_per_ip)
        self.failures = LoginFailures(
            config.auth_failure_limit, config.auth_failure_window, config.auth_cooloff
        )
        self.hourly = HourlyLimits()
        self.group_commit = GroupCommit(self)
        self.events = EventBuffer()
        self.stats = nodes.ConnectionCounter()
        self.logins_written: dict[int, float] = {}
        self.session_watch = revocation.SessionWatch(self, config.session_check_seconds)
        self.cooloff_watch = cooloffs.CooloffWatch(self, config.session_check_seconds)
        self.listeners: list[Listener] = []
        self.node_id = nodes.node_id()
        self._servers: list[asyncio.Server] = []
        self._sessions: set[RelaySMTP] = set()
        self._event_flush: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    # --- database work ----------------------------------------------------------------
    def run_db(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run a synchronous database function on the relay's thread pool."""
        return self.loop.run_in_executor(self.executor, _db_job, fn, *args)

    async def store_now(self, subs: list[Submission], hostname: str) -> list[str]:
        """Commit `subs` in one transaction now; give their queue ids."""
        if self.asyncdb is not None:
            return await self.asyncdb.store_messages(subs, hostname)
        return await self.run_db(store_messages, subs, hostname)

    def store(self, submission: Submission) -> asyncio.Future[str]:
        """Queue a message for the next commit; the future gives its queue id."""
        return self.group_commit.submit(submission)

    # --- connections ------------------------------------------------------------------
    def connection_opened(self, smtp: RelaySMTP) -> str | None:
        """Count a new connection; return a 421 reply if it must be refused."""
        ip = smtp.client_ip or ""
        self.stats.connection(smtp.listener.port)
        refusal = self.cooloff_refusal(ip, smtp.listener.port, "connection during cool-off")
        if refusal is not None:
            return refusal
        if not self.connections.acquire(ip):
            self.record_event(EventKind.CONNECTION_LIMIT, client_ip=ip or None,
                              port=smtp.listener.port, reply=TOO_MANY_CONNECTIONS,
                              reason=f"more than {self.config.max_connections_per_ip} "
                                     "connections at once")
            return TOO_MANY_CONNECTIONS
        self._sessions.add(smtp)
        return None

    def cooloff_refusal(self, ip: str | None, port: int, reason: str) -> str | None:
        """The 421 reply (and its event) if `ip` is in the failed-login cool-off."""
        left = self.failures.remaining_cooloff(ip or "")
        if not left:
            return None
        reply = cooloff_reply(left)
        owner = self.failures.owner(ip or "")  # the account whose username started it
        self.record_event(EventKind.AUTH_COOLOFF, client_ip=ip or None, port=port, reply=reply,
                          reason=reason, username=owner.username, account_id=owner.account_id,
                          smtp_user_id=owner.smtp_user_id)
        return reply

    def connection_closed(self, smtp: RelaySMTP) -> None:
        self.connections.release(smtp.client_ip or "")
        self._sessions.discard(smtp)
        self.session_watch.discard(smtp)

    # --- events -----------------------------------------------------------------------
    def record_event(self, kind: str, **fields: Any) -> None:
        self.events.record(kind, **fields)
        if self._closed:
            return
        if self._event_flush is None or self._event_flush.done():
            self._event_flush = self.loop.create_task(self._flush_events_soon())

    async def _flush_events_soon(self) -> None:
        # A short pause lets a burst of identical events fold into one write.
        await asyncio.sleep(0.05)
        await self.flush_events()

    async def flush_events(self) -> None:
        while len(self.events):
            batch = self.events.take()
            try:
                await self.run_db(write_events, batch)
            except Exception:
                log.exception("could not write %d relay events; dropped", len(batch))

    async def flush(self) -> None:
        """Write pending events and connection counts now (tests, shutdown)."""
        if self._event_flush is not None and not self._event_flush.done():
            await asyncio.shield(self._event_flush)
        await self.flush_events()
        await self._beat()

    # --- listening --------------------------------------------------------------------
    def wanted_listeners(self) -> list[Listener]:
        cfg = self.config
        plain_tls = "starttls" if cfg.tls_cert else "none"
        wanted = [Listener(h, p, plain_tls) for h, p in parse_listen(cfg.listen)]
        wanted += [Listener(h, p, "implicit") for h, p in parse_listen(cfg.listen_tls)]
        return wanted

    async def start(self) -> list[Listener]:
        """Bind every listener that can be bound; raise NothingBound if none can."""
        cfg = self.config
        if cfg.tls_cert:
            self._tls = server_context(cfg.tls_cert, cfg.tls_key)
        wanted = self.wanted_listeners()
        if any(x.tls == "implicit" for x in wanted) and self._tls is None:
            log.error("implicit TLS ports need RELAY_TLS_CERT and RELAY_TLS_KEY; skipping them")
            wanted = [x for x in wanted if x.tls != "implicit"]
        if cfg.require_tls and self._tls is None:
            log.warning("RELAY_REQUIRE_TLS is on but no certificate is set: nobody can log in")
        raise_open_file_limit()
        for listener in wanted:
            await self._bind(listener)
        if not self.listeners:
            raise NothingBound("could not listen on any of the configured ports")
        await self.run_db(nodes.register_node, self.node_id, self.listeners)
        self._heartbeat = self.loop.create_task(self._heartbeat_loop())
        return self.listeners

    async def _bind(self, listener: Listener) -> None:
        actual = listener  # replaced by the bound port (port 0 → a free port)

        def factory() -> RelaySMTP:
            return RelaySMTP(self, actual, self._tls)

        def implicit_tls() -> ImplicitTLS:
            assert self._tls is not None
            return ImplicitTLS(factory(), self._tls)

        try:
            # Implicit TLS: not create_server(ssl=…), which hands over a connection only
            # after its handshake, so that a connection counts against its client's limit
            # from the start.
            server = await self.loop.create_server(
                implicit_tls if listener.tls == "implicit" else factory,
                listener.host, listener.port,
                reuse_address=True, reuse_port=self.config.reuse_port or None,
                backlog=512,
            )
        except OSError as exc:
            why = {errno.EADDRINUSE: "port busy", errno.EACCES: "not permitted"}.get(
                exc.errno or 0, exc.strerror or str(exc)
            )
            log.warning("cannot listen on %s:%s (%s); skipped", listener.host, listener.port, why)
            return
        if not server.sockets:
            # Python 3.11 can swallow EMFILE and hand back a server without sockets.
            log.warning("cannot listen on %s:%s (no socket: out of file descriptors?); skipped",
                        listener.host, listener.port)
            server.close()
            return
        port = server.sockets[0].getsockname()[1]
        actual = Listener(listener.host, port, listener.tls)
        self._servers.append(server)
        self.listeners.append(actual)

    # --- heartbeat --------------------------------------------------------------------
    async def _beat(self) -> None:
        try:
            await self.run_db(nodes.heartbeat, self.node_id, self.listeners, self.stats.take())
        except Exception:
            log.exception("heartbeat failed")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            self.failures.prune()
            await self._beat()

    # --- stopping ---------------------------------------------------------------------
    async def stop(self, grace: float | None = None) -> None:
        """Stop accepting, give sessions in flight `grace` seconds, then close them."""
        grace = self.config.stop_grace if grace is None else grace
        for server in self._servers:
            server.close()
        deadline = self.loop.time() + grace
        while self._sessions and self.loop.time() < deadline:
            await asyncio.sleep(0.05)
        for smtp in list(self._sessions):
            smtp.hang_up()
        await asyncio.sleep(0)  # let closed sessions record their last events
        await self.session_watch.stop()
        await self.cooloff_watch.stop()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        self._closed = True
        await self.flush()
        try:
            await self.run_db(nodes.mark_stopped, self.node_id)
        except Exception:
            log.exception("could not mark the relay node stopped")
        if self.asyncdb is not None:
            await self.asyncdb.close()
        await self.loop.run_in_executor(None, self.close_db_threads)

    def close_db_threads(self) -> None:
        """Close each pool thread's database connection, then the pool."""
        threads = len(getattr(self.executor, "_threads", ())) or 1
        barrier = threading.Barrier(threads)

        def close() -> None:
            connections.close_all()
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait(timeout=5)

        for _ in range(threads):
            self.executor.submit(close)
        self.executor.shutdown(wait=True)
