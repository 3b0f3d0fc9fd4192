"""The relay server: listeners, the store, and the process's shared state.

One `RelayServer` per process: it binds every configured port with
`loop.create_server()` (not aiosmtpd's `Controller`, which costs a thread per port),
owns the thread pool that runs the database work, the store chosen once for this
database (`open_store()`: on PostgreSQL the login query and the store run on the event
loop), the group commit, the in-memory limits and their sync with the other processes, the
event buffer and the heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import resource
import ssl
from collections.abc import Callable
from typing import Any, TypeVar

from relay import nodes
from relay.listen import Listener, parse_listen
from relay.smtp import limit_sync, revocation, store_pg
from relay.smtp.config import RelayConfig
from relay.smtp.context import RelayContext
from relay.smtp.events import EventBuffer, write_events
from relay.smtp.group_commit import GroupCommit
from relay.smtp.guard import Guard
from relay.smtp.handler import RelayHandler
from relay.smtp.login_cache import LoginCache
from relay.smtp.protocol import RelaySMTP, quiet_aiosmtpd_logs
from relay.smtp.store import RelayStore, ThreadStore, WantsHourly
from relay.smtp.tls import ImplicitTLS, server_context
from smtpplus.dbthreads import DbThreads

log = logging.getLogger("relay.server")
T = TypeVar("T")


class NothingBound(RuntimeError):
    """None of the configured listeners could be bound."""


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


def open_store(config: RelayConfig, threads: DbThreads, wants_hourly: WantsHourly) -> RelayStore:
    """The relay's store for the default database, chosen once for the process."""
    # Cached suppression answers are trusted for two limit syncs
    # (relay.smtp.suppression_cache).
    max_age = 2 * config.limits_sync_seconds
    # A cached login is trusted for two session checks (relay.smtp.login_cache).
    cache = LoginCache(2 * config.session_check_seconds) if config.login_cache else None
    if store_pg.wanted():
        return store_pg.PostgresStore(threads, config.hostname, wants_hourly,
                                      max(1, config.db_threads), prepare=config.db_prepare,
                                      suppression_max_age=max_age, login_cache=cache)
    return ThreadStore(threads, config.hostname, wants_hourly, max_age, cache)


class RelayServer:
    def __init__(self, config: RelayConfig, loop: asyncio.AbstractEventLoop | None = None) -> None:
        quiet_aiosmtpd_logs()
        self.config = config
        self.loop = loop or asyncio.get_event_loop()
        self.db_threads = DbThreads(config.db_threads, "relay-db")
        self.events = EventBuffer()
        self.stats = nodes.ConnectionCounter()
        self.guard = Guard(config, self.record_event, self.stats)
        self.store = open_store(config, self.db_threads, self.guard.hourly.needs_load)
        self.group_commit = GroupCommit(self.loop, self.store)
        self.session_watch = revocation.SessionWatch(self, config.session_check_seconds)
        self.limit_sync = limit_sync.LimitSync(self, config.limits_sync_seconds)
        self.listeners: list[Listener] = []
        self.node_id = config.node_name or nodes.node_id()
        self._servers: list[asyncio.Server] = []
        self._sessions: set[RelaySMTP] = set()
        # All that the handler and each connection see of this server.
        self.context = RelayContext(
            config=config, loop=self.loop, guard=self.guard, record_event=self.record_event,
            store=self.store, commit=self.group_commit.submit, stats=self.stats,
            session_watch=self.session_watch, open_sessions=self._sessions,
        )
        self.handler = RelayHandler(self.context)
        self._event_flush: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    # --- database work ----------------------------------------------------------------
    def run_db(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Run a synchronous database function on the relay's thread pool."""
        return self.db_threads.run(fn, *args)

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
        await self.limit_sync.run_once()

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
        await self.store.check()
        for listener in wanted:
            await self._bind(listener)
        if not self.listeners:
            raise NothingBound("could not listen on any of the configured ports")
        await self.run_db(nodes.register_node, self.node_id, self.listeners)
        self._heartbeat = self.loop.create_task(self._heartbeat_loop())
        self.limit_sync.start()
        return self.listeners

    async def _bind(self, listener: Listener) -> None:
        actual = listener  # replaced by the bound port (port 0 → a free port)

        def factory() -> RelaySMTP:
            return RelaySMTP(self.handler, actual, self._tls)

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
            await self.run_db(nodes.heartbeat, self.node_id, self.listeners, self.stats.take(),
                              self.stats.accepted_last_minute())
        except Exception:
            log.exception("heartbeat failed")

    async def _heartbeat_loop(self) -> None:
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            self.guard.failures.prune()
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
        await self.limit_sync.stop()
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
        await self.store.close()
        await self.db_threads.aclose()
