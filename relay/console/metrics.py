"""The console's `/metrics`: what only the database knows, for Prometheus.

Queue depth by status, how long the longest-waiting due recipient has been due, and the
number of live relay nodes (heartbeats), read at scrape time through the queue's partial
index, never a scan of the log. Each long-running process serves its own counters
(`smtpplus.metrics`); this page adds the gauges that belong to no single process.

Readable with `Authorization: Bearer <METRICS_TOKEN>` or from a client network in
METRICS_ALLOWED_NETWORKS; with neither setting it answers 404, as if it did not exist.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable

from django.conf import settings
from django.db.models import Count, Min
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from accounts.tenancy import client_ip
from relay.listen import alive_nodes
from relay.models import Recipient, RecipientStatus
from smtpplus.metrics import QueueCollector

PENDING = (RecipientStatus.QUEUED, RecipientStatus.DEFERRED)


def read_queue() -> tuple[dict[str, int], float | None]:
    """(recipients by pending status, seconds the longest-waiting due one has been due)."""
    now = timezone.now()
    pending = Recipient.objects.filter(status__in=PENDING)
    counts = {status.value: 0 for status in PENDING}
    for row in pending.values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    due = pending.filter(next_attempt_at__lte=now).aggregate(oldest=Min("next_attempt_at"))
    oldest = due["oldest"]
    return counts, (now - oldest).total_seconds() if oldest else None


class NodesCollector(Collector):
    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(
            "smtpplus_relay_nodes_up", "Relay processes whose heartbeat is recent.",
            value=alive_nodes().count())


def _allowed(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    if token:
        header = request.headers.get("Authorization", "")
        if hmac.compare_digest(header.encode(), f"Bearer {token}".encode()):
            return True
    ip = client_ip(request)
    if ip and settings.METRICS_ALLOWED_NETWORKS:
        address = ipaddress.ip_address(ip)
        return any(address in ipaddress.ip_network(net, strict=False)
                   for net in settings.METRICS_ALLOWED_NETWORKS)
    return False


@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not (settings.METRICS_TOKEN or settings.METRICS_ALLOWED_NETWORKS):
        raise Http404("metrics are not enabled")
    if not _allowed(request):
        response = HttpResponse("metrics: give Authorization: Bearer <METRICS_TOKEN>\n",
                                status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    registry = CollectorRegistry()
    registry.register(QueueCollector(read_queue))
    registry.register(NodesCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
