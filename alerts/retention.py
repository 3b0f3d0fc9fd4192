"""Old alerts, their events and notifications are removed after RETENTION_DAYS.

Safe for de-duplication: the collector never looks further back than its watermark minus
a few minutes, so a source older than the retention is never seen again.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings

from alerts.models import Alert, AlertEvent

BATCH = 5000
_last_run: datetime | None = None


def prune(now: datetime) -> int:
    """Delete what is older than the retention; returns how many rows went."""
    cutoff = now - timedelta(days=settings.RETENTION_DAYS)
    removed = 0
    for model in (AlertEvent, Alert):  # events first: they point at alerts
        while True:
            ids = list(
                model.objects.filter(created__lt=cutoff).order_by().values_list("pk", flat=True)[:BATCH]
            )
            if not ids:
                break
            removed += model.objects.filter(pk__in=ids).delete()[0]
    return removed


def prune_hourly(now: datetime) -> int:
    """`prune`, at most once an hour per process (run_once calls this every pass)."""
    global _last_run
    if _last_run is not None and abs((now - _last_run).total_seconds()) < 3600:
        return 0
    _last_run = now
    return prune(now)
