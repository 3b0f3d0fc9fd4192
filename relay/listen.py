"""Listening addresses: parsing `RELAY_LISTEN`-style specs and what the console shows."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from relay.models import RelayNode

# A node whose heartbeat is older than this is considered gone.
NODE_ALIVE_SECONDS = 60

# How the console names each TLS mode, in the order it lists them.
TLS_LABELS = {"starttls": "STARTTLS", "none": "no TLS", "implicit": "implicit TLS"}


class ListenSpecError(ValueError):
    pass


@dataclass(frozen=True, order=True)
class Listener:
    host: str
    port: int
    tls: str  # "starttls", "implicit" or "none"


@dataclass(frozen=True)
class Endpoint:
    """Where the console reaches a relay listener (its test message connects there)."""

    host: str
    port: int
    tls: str  # "starttls", "implicit" or "none"

    @property
    def mode(self) -> str:
        return TLS_LABELS.get(self.tls, TLS_LABELS["none"])

    @property
    def label(self) -> str:
        return f"port {self.port} ({self.mode})"


def parse_listen(spec: str) -> list[tuple[str, int]]:
    """Parse `HOST:PORTS[ HOST:PORTS…]`, PORTS being a list with ranges.

    `0.0.0.0:25,587,2525,1025-5000` → 25, 587, 2525 and 1025…5000 on 0.0.0.0.
    IPv6 hosts go in brackets: `[::]:587`. Several specs are separated by spaces or `;`.
    """
    result: list[tuple[str, int]] = []
    seen: set[tuple[str, int]] = set()
    for item in spec.replace(";", " ").split():
        if item.startswith("["):
            end = item.find("]:")
            if end < 0:
                raise ListenSpecError(f"{item!r}: expected [IPv6]:PORTS")
            host, ports = item[1:end], item[end + 2 :]
        else:
            host, sep, ports = item.rpartition(":")
            if not sep or not host:
                raise ListenSpecError(f"{item!r}: expected HOST:PORTS, e.g. 0.0.0.0:25,587")
        for part in ports.split(","):
            part = part.strip()
            if not part:
                continue
            lo_s, _, hi_s = part.partition("-")
            try:
                lo = int(lo_s)
                hi = int(hi_s) if hi_s else lo
            except ValueError:
                raise ListenSpecError(f"{item!r}: {part!r} is not a port or a range") from None
            if not (0 <= lo <= hi <= 65535):
                raise ListenSpecError(f"{item!r}: {part!r} is outside 0-65535 or reversed")
            for port in range(lo, hi + 1):
                if (host, port) not in seen:
                    seen.add((host, port))
                    result.append((host, port))
    return result


def configured_listeners() -> list[Listener]:
    """Listeners from settings, before any relay has reported its real ports."""
    plain_tls = "starttls" if settings.RELAY_TLS_CERT else "none"
    listeners = [Listener(h, p, plain_tls) for h, p in parse_listen(settings.RELAY_LISTEN)]
    listeners += [Listener(h, p, "implicit") for h, p in parse_listen(settings.RELAY_LISTEN_TLS)]
    return listeners


def alive_nodes() -> QuerySet[RelayNode]:
    cutoff = timezone.now() - timedelta(seconds=NODE_ALIVE_SECONDS)
    return RelayNode.objects.filter(heartbeat__gte=cutoff, stopped__isnull=True)


def node_listeners(items: Iterable[dict[str, Any]]) -> list[Listener]:
    """A node's reported listeners (`RelayNode.listeners`, JSON) as `Listener`s."""
    return [Listener(item.get("host", ""), int(item["port"]), item.get("tls", "none"))
            for item in items]


def advertised_listeners(nodes: Iterable[RelayNode] | None = None) -> tuple[list[Listener], bool]:
    """(listeners, reported): the live relays' real ports, or the configured ones.

    `reported` is False when no relay has sent a heartbeat in the last minute. `nodes`:
    the live nodes when the caller has already loaded them.
    """
    found: set[Listener] = set()
    for node in alive_nodes() if nodes is None else nodes:
        found.update(node_listeners(node.listeners))
    if found:
        return sorted(found, key=lambda x: (x.port, x.host)), True
    return configured_listeners(), False


def compact_ports(ports: list[int]) -> str:
    """[25, 587, 1025, 1026, 1027] → "25, 587, 1025-1027"."""
    ports = sorted(set(ports))
    parts: list[str] = []
    i = 0
    while i < len(ports):
        j = i
        while j + 1 < len(ports) and ports[j + 1] == ports[j] + 1:
            j += 1
        parts.append(str(ports[i]) if i == j else f"{ports[i]}-{ports[j]}")
        i = j + 1
    return ", ".join(parts)


def ports_by_tls(listeners: Iterable[Listener]) -> list[tuple[str, str]]:
    """(TLS label, compact ports) per TLS mode, in `TLS_LABELS` order, hosts merged:
    [("STARTTLS", "25, 587, 1025-5000"), ("implicit TLS", "465")]."""
    by_tls: dict[str, list[int]] = {}
    for x in listeners:
        by_tls.setdefault(x.tls, []).append(x.port)
    order = list(TLS_LABELS)
    return [
        (TLS_LABELS.get(tls, tls), compact_ports(by_tls[tls]))
        for tls in sorted(by_tls, key=lambda t: (order.index(t) if t in order else len(order), t))
    ]
