"""Prometheus metrics of every long-running process, defined in one place.

Each process counts what it does in its own registry (prometheus-client's default one)
and serves it over HTTP when asked to (`serve()`: `--metrics HOST:PORT` or the
`METRICS_*_LISTEN` settings): the relay (connections, logins, messages accepted and
refused by reason, commit latency and group sizes), the delivery workers (deliveries by
outcome and upstream, delivery latency) and the alert sender (alerts sent and failed).
The console's `/metrics` adds the queue gauges, read from the database at scrape time
(`QueueCollector`).

No label holds a user, an address or an IP: labels take a few fixed values each (a
port, an event kind, an outcome, an upstream kind), so the number of series stays small
whatever the traffic.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from django.core.management.base import CommandError
from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("smtpplus.metrics")

# --- relay -----------------------------------------------------------------------------
RELAY_CONNECTIONS = Counter(
    "smtpplus_relay_connections", "Connections the relay accepted, by listening port.",
    ["port"])
RELAY_LOGINS = Counter(
    "smtpplus_relay_logins", "Successful SMTP AUTH logins, by listening port.", ["port"])
RELAY_EVENTS = Counter(
    "smtpplus_relay_events",
    "Refusals and failed logins at the relay, by kind (the relay events' kinds: "
    "auth_failed, sender_rejected, from_rejected, size_exceeded, rate_limited, …).",
    ["kind"])
RELAY_ACCEPTED = Counter(
    "smtpplus_relay_messages_accepted", "Messages stored and answered 250.")
RELAY_STORE_FAILED = Counter(
    "smtpplus_relay_store_failures", "Messages whose storage failed (answered 4xx).")
RELAY_COMMIT_SECONDS = Histogram(
    "smtpplus_relay_commit_seconds",
    "Time of one group-commit transaction (messages stored together).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))
RELAY_COMMIT_GROUP = Histogram(
    "smtpplus_relay_commit_group_size", "Messages stored by one group-commit transaction.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 100))

# --- delivery --------------------------------------------------------------------------
DELIVERIES = Counter(
    "smtpplus_deliveries",
    "Delivery attempts per recipient, by outcome (delivered, deferred, failed) and "
    "upstream kind (smtp, mx, maildir).",
    ["outcome", "upstream"])
DELIVERY_SECONDS = Histogram(
    "smtpplus_delivery_seconds", "Time of one delivery attempt to the upstream.",
    ["upstream"], buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
DELIVERY_LATENCY = Histogram(
    "smtpplus_delivery_latency_seconds",
    "From accept to delivered, for delivered recipients (queueing and retries included).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400))

# --- alerts ----------------------------------------------------------------------------
ALERTS = Counter(
    "smtpplus_alerts", "Alert notifications, by channel (email, webhook) and result "
    "(sent, failed: a failed one is retried).", ["channel", "result"])


def check_metrics_address(listen: str) -> None:
    """Refuse (CommandError) a metrics address that is not HOST:PORT, naming it."""
    if not listen:
        return
    try:
        _split(listen)
    except ValueError as exc:
        raise CommandError(str(exc)) from None


def _split(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"metrics address {listen!r} is not HOST:PORT (e.g. 127.0.0.1:9101)")
    return host.strip("[]") or "127.0.0.1", int(port)


def serve(listen: str, what: str, offset: int = 0) -> int | None:
    """Serve this process's metrics on `listen` ("HOST:PORT"; port + `offset` for the
    n-th of several forked processes). Returns the port, or None when `listen` is empty.
    """
    if not listen:
        return None
    host, port = _split(listen)
    server, _thread = start_http_server(port + offset if port else 0, addr=host)
    actual = int(server.server_address[1])
    log.info("%s metrics on http://%s:%d/metrics", what, host, actual)
    return actual


class QueueCollector(Collector):
    """Queue gauges read from the database when scraped (console `/metrics`).

    `read` returns {status: recipients} and the age in seconds of the oldest recipient
    that is due (None: none is due).
    """

    def __init__(self, read: Callable[[], tuple[dict[str, int], float | None]]) -> None:
        self.read = read

    def collect(self) -> Iterable[Metric]:
        counts, oldest = self.read()
        depth = GaugeMetricFamily(
            "smtpplus_queue_recipients", "Recipients in the queue, by status.",
            labels=["status"])
        for status, count in sorted(counts.items()):
            depth.add_metric([status], count)
        yield depth
        yield GaugeMetricFamily(
            "smtpplus_queue_oldest_due_seconds",
            "Age of the oldest recipient waiting for delivery now (0: none is due).",
            value=oldest or 0.0)
