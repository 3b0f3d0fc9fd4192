"""Where this relay process listens, its heartbeat, and connection counts.

Each process registers a `RelayNode` row (named by RELAY_NODE_NAME, by default
"host:pid", with the product's version) when it starts, refreshes its heartbeat about
every ten seconds (`HEARTBEAT_SECONDS`) with the number of messages it accepted in the
last minute, and marks it stopped on exit; the console treats a node without a
heartbeat for a minute as down. Connection counts are
kept in memory (`ConnectionCounter`) and added to the hourly `ConnectionStat` rows with
each heartbeat, never a row per connection:

- every connection counts on the port's row without an SMTP+ user;
- every successful login counts a connection and a login on the row of that user, and
  a TLS login too when the session was encrypted (STARTTLS or implicit TLS).
"""

from __future__ import annotations

import importlib.metadata
import os
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from relay.listen import Listener
from relay.models import ConnectionStat, RelayNode
from smtpplus import metrics

HEARTBEAT_SECONDS = 10.0


def node_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def product_version() -> str:
    try:
        return importlib.metadata.version("smtpplus")
    except importlib.metadata.PackageNotFoundError:
        return ""


def listeners_json(listeners: list[Listener]) -> list[dict[str, object]]:
    return [{"host": x.host, "port": x.port, "tls": x.tls} for x in listeners]


def register_node(node: str, listeners: list[Listener]) -> None:
    now = timezone.now()
    RelayNode.objects.update_or_create(
        node_id=node,
        defaults={
            "hostname": socket.gethostname(),
            "listeners": listeners_json(listeners),
            "started": now,
            "heartbeat": now,
            "stopped": None,
            "version": product_version(),
            "accepted_last_minute": 0,
            "connections": {},
        },
    )


def mark_stopped(node: str) -> None:
    RelayNode.objects.filter(node_id=node).update(stopped=timezone.now())


@dataclass
class _Counts:
    connections: int = 0
    logins: int = 0
    tls_logins: int = 0
    last_seen: datetime | None = None


StatKey = tuple[datetime, int, int | None]  # (hour, port, smtp_user_id)


class ConnectionCounter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._counts: dict[StatKey, _Counts] = {}
        self.clock = clock
        # Accepted messages per second of the last minute: [second, count].
        self._accepted: deque[list[int]] = deque()

    def accepted(self) -> None:
        """A message was committed."""
        second = int(self.clock())
        if self._accepted and self._accepted[-1][0] == second:
            self._accepted[-1][1] += 1
        else:
            self._accepted.append([second, 1])

    def accepted_last_minute(self) -> int:
        cutoff = int(self.clock()) - 60
        while self._accepted and self._accepted[0][0] <= cutoff:
            self._accepted.popleft()
        return sum(n for _, n in self._accepted)

    def _bump(self, port: int, user_id: int | None, logins: int, tls_logins: int = 0) -> None:
        now = timezone.now()
        key = (now.replace(minute=0, second=0, microsecond=0), port, user_id)
        counts = self._counts.get(key)
        if counts is None:
            counts = self._counts[key] = _Counts()
        counts.connections += 1
        counts.logins += logins
        counts.tls_logins += tls_logins
        counts.last_seen = now

    def connection(self, port: int) -> None:
        self._bump(port, None, 0)
        metrics.RELAY_CONNECTIONS.labels(port).inc()

    def login(self, port: int, smtp_user_id: int, tls: bool = False) -> None:
        self._bump(port, smtp_user_id, 1, int(tls))
        metrics.RELAY_LOGINS.labels(port).inc()

    def take(self) -> dict[StatKey, _Counts]:
        counts, self._counts = self._counts, {}
        return counts


def _add_to_row(hour: datetime, port: int, user_id: int | None, c: _Counts) -> int:
    return ConnectionStat.objects.filter(hour=hour, port=port, smtp_user_id=user_id).update(
        connections=F("connections") + c.connections,
        logins=F("logins") + c.logins,
        tls_logins=F("tls_logins") + c.tls_logins,
        last_seen=c.last_seen or timezone.now(),
    )


def write_stats(counts: dict[StatKey, _Counts]) -> None:
    for (hour, port, user_id), c in counts.items():
        if _add_to_row(hour, port, user_id, c):
            continue
        try:
            with transaction.atomic():
                ConnectionStat.objects.create(
                    hour=hour, port=port, smtp_user_id=user_id, connections=c.connections,
                    logins=c.logins, tls_logins=c.tls_logins, last_seen=c.last_seen or timezone.now(),
                )
        except IntegrityError:
            # Another relay process created the row in between: add to it.
            _add_to_row(hour, port, user_id, c)


def heartbeat(
    node: str, listeners: list[Listener], counts: dict[StatKey, _Counts], accepted: int = 0,
) -> None:
    """Refresh the node's heartbeat and messages accepted in the last minute, and add
    the connection counts. Synchronous.

    The listeners are written only if the row is gone: they do not change after start,
    and with a wide port range they are hundreds of kilobytes of JSON."""
    updated = RelayNode.objects.filter(node_id=node).update(
        heartbeat=timezone.now(), stopped=None, accepted_last_minute=accepted)
    if not updated:
        register_node(node, listeners)
        RelayNode.objects.filter(node_id=node).update(accepted_last_minute=accepted)
    write_stats(counts)
