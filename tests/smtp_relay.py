"""A real relay for tests: started in-process, in a background thread with its own event
loop, listening on a free 127.0.0.1 port.

    def test_it_queues(relay, cast):                     # default settings
        with smtplib.SMTP(relay.host, relay.port) as smtp: ...

    @pytest.mark.parametrize("relay", [{"RELAY_MAX_RECIPIENTS": 2}], indirect=True)
    def test_it_limits(relay, cast): ...                 # settings overrides

    def test_two(start_relay, cast):                     # several relays, or overrides
        relay = start_relay(RELAY_HOSTNAME="mx.test")    # stopped after the test

    with running_relay(RELAY_MAX_MESSAGE_SIZE=1000) as relay: ...   # anywhere else

Overrides are setting names (`RELAY_...`) or `RelayConfig` field names; they apply to
this relay only, not to Django's settings. `relay.flush()` writes pending relay events
and connection counts now; `relay.tls_port` is the first implicit-TLS port, if any.
The fixtures need the database from threads, so they use `transactional_db`.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest

from relay.listen import Listener
from relay.smtp.server import RelayConfig, RelayServer, cancel_remaining_tasks

DEFAULTS: dict[str, Any] = {
    "RELAY_LISTEN": "127.0.0.1:0",
    "RELAY_LISTEN_TLS": "",
    "RELAY_TLS_CERT": "",
    "RELAY_TLS_KEY": "",
    "RELAY_HOSTNAME": "relay.test",
    "RELAY_DB_THREADS": 4,
    "stop_grace": 2.0,
}


@dataclass
class RunningRelay:
    server: RelayServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    listeners: list[Listener] = field(default_factory=list)
    stopped: bool = False

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def port(self) -> int:
        return next(x.port for x in self.listeners if x.tls != "implicit")

    @property
    def tls_port(self) -> int | None:
        return next((x.port for x in self.listeners if x.tls == "implicit"), None)

    @property
    def config(self) -> RelayConfig:
        return self.server.config

    def call(self, coro_fn: Callable[[], Any], timeout: float = 30) -> Any:
        """Run a coroutine on the relay's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro_fn(), self.loop).result(timeout)

    def flush(self) -> None:
        self.call(self.server.flush)

    def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        try:
            self.call(self.server.stop)
            self.call(cancel_remaining_tasks, timeout=5)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


_started = itertools.count(1)


def start(**overrides: Any) -> RunningRelay:
    # Relays of one test process are separate nodes, as relay processes are.
    name = {"node_name": f"test-relay-{next(_started)}"}
    config = RelayConfig.from_settings(**{**DEFAULTS, **name, **overrides})
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        loop.call_soon(ready.set)
        loop.run_forever()
        loop.close()

    thread = threading.Thread(target=run, name="test-relay", daemon=True)
    thread.start()
    ready.wait(5)
    server = RelayServer(config, loop)
    handle = RunningRelay(server, loop, thread)
    try:
        handle.listeners = handle.call(server.start)
    except BaseException:
        handle.stopped = True
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        server.db_threads.executor.shutdown(wait=False)
        raise
    return handle


@contextmanager
def running_relay(**overrides: Any) -> Iterator[RunningRelay]:
    handle = start(**overrides)
    try:
        yield handle
    finally:
        handle.stop()


@pytest.fixture
def relay(request: pytest.FixtureRequest, transactional_db: None) -> Iterator[RunningRelay]:
    """A running relay; override settings with indirect parametrization."""
    with running_relay(**getattr(request, "param", {})) as handle:
        yield handle


@pytest.fixture
def start_relay(transactional_db: None) -> Iterator[Callable[..., RunningRelay]]:
    """A factory: `start_relay(**overrides)`; every relay it starts is stopped afterwards."""
    started: list[RunningRelay] = []

    def factory(**overrides: Any) -> RunningRelay:
        handle = start(**overrides)
        started.append(handle)
        return handle

    yield factory
    for handle in started:
        handle.stop()


# --- Helpers for talking to a relay --------------------------------------------------
def message(
    from_: str = "Shop <shop@acme.test>",
    to: str = "someone@example.net",
    subject: str = "Hello",
    body: bytes = b"Hello.\r\n",
    extra: str = "",
) -> bytes:
    """A small RFC 5322 message with CRLF line ends."""
    head = f"From: {from_}\r\nTo: {to}\r\nSubject: {subject}\r\n{extra}".encode()
    return head + b"Message-ID: <test@acme.test>\r\n\r\n" + body


def dialog(host: str, port: int, lines: list[bytes], timeout: float = 10) -> list[str]:
    """Send raw command lines one at a time; return every reply (multi-line joined).

    The greeting is the first reply. Useful for exact prompts and odd input that
    smtplib would refuse to send.
    """
    import socket

    replies: list[str] = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        reader = sock.makefile("rb")

        def read_reply() -> str:
            parts: list[str] = []
            while True:
                line = reader.readline()
                if not line:
                    return "\n".join(parts) or "<closed>"
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                parts.append(text)
                if len(text) < 4 or text[3] != "-":
                    return "\n".join(parts)

        replies.append(read_reply())
        for line in lines:
            sock.sendall(line + b"\r\n")
            replies.append(read_reply())
    return replies
