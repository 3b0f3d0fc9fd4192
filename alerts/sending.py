"""The alert sender: collect new events, build due alerts, send due notifications.

`run_once()` is the public entry point: `manage.py sendalerts` (a process of its own, which
`runrelay` starts) runs it every few seconds. Any number of processes may run it at once:

* a rule is processed (collect + build) by one process at a time — its row is locked
  with SKIP LOCKED on PostgreSQL; SQLite's IMMEDIATE transactions serialise writers;
* an event is recorded once per rule (unique constraint) and belongs to one alert;
* a notification is claimed with a lease before it is sent, outside any transaction.

A failed notification is retried with backoff (ALERTS_RETRY_DELAYS) and then marked
failed; it is only logged, it never becomes an alert event itself.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TypeVar

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Min, Model, Q, QuerySet
from django.utils import timezone

from alerts.channels import BaseChannel, ChannelError, EmailChannel, WebhookChannel
from alerts.collect import collect_rule
from alerts.content import AlertContent, build_context, event_view, render_alert, subject_for
from alerts.models import (
    Alert,
    AlertEvent,
    AlertRule,
    Channel,
    Frequency,
    Notification,
    NotificationStatus,
)
from alerts.retention import prune_hourly
from smtpplus import metrics

logger = logging.getLogger("smtpplus.alerts")

IN_FLIGHT = (NotificationStatus.PENDING, NotificationStatus.RETRYING)


def coalesce_seconds() -> int:
    return int(settings.ALERTS_COALESCE_SECONDS)


def retry_delays() -> list[float]:
    return list(settings.ALERTS_RETRY_DELAYS)


def send_lease() -> timedelta:
    return timedelta(seconds=settings.ALERTS_SEND_LEASE_SECONDS)


def _clock(start: datetime) -> datetime:
    """The time now, in a pass that started at `start`.

    Sending may take minutes (slow mail servers, webhooks that time out): leases and
    retries are counted from the moment of each claim, not from the start of the pass,
    or a lease could be expired before the notification is sent and another process
    would send it again. A pass run for a moment ahead of the clock keeps that moment.
    """
    return max(start, timezone.now())


_M = TypeVar("_M", bound=Model)


def _lock(qs: QuerySet[_M]) -> QuerySet[_M]:
    # SKIP LOCKED: a rule or notification another process holds is simply not ours now.
    if connection.features.has_select_for_update_skip_locked:
        return qs.select_for_update(skip_locked=True)
    return qs


# --- Building alerts ------------------------------------------------------------------


def _due(rule: AlertRule, pending: QuerySet[AlertEvent], now: datetime) -> bool:
    """Is an alert of the rule's pending events due? Asks the database only what it must:
    a digest before its time does not look at its events at all."""
    if rule.frequency == Frequency.AS_NEEDED:
        # The window opens with the first event (when it happened, or when it was noticed
        # if its clock is ahead): events of the same window go out together.
        first = pending.aggregate(occurred=Min("occurred_at"), noticed=Min("created"))
        if first["occurred"] is None:
            return False
        opened = min(first["occurred"], first["noticed"])
        return bool(opened <= now - timedelta(seconds=coalesce_seconds()))
    start = rule.last_alert_at or rule.watch_since
    return now >= start + timedelta(seconds=rule.digest_period_seconds()) and pending.exists()


def create_notifications(
    alert: Alert, rule: AlertRule, now: datetime, *, claimed: bool = False
) -> list[Notification]:
    """One notification per email address and one for the webhook.

    `claimed`: created already in the "sending" state (first attempt, under lease), for
    a caller that sends them itself right away.
    """
    targets = [(Channel.EMAIL, address) for address in rule.email_list]
    if rule.webhook_url:
        targets.append((Channel.WEBHOOK, rule.webhook_url))
    extra: dict[str, object] = {}
    if claimed:
        extra = {"status": NotificationStatus.SENDING, "attempts": 1, "last_attempt_at": now,
                 "lease_until": now + send_lease()}
    rows = [
        Notification(alert=alert, account_id=alert.account_id, channel=channel, target=target,
                     created=now, next_attempt_at=now, **extra)
        for channel, target in targets
    ]
    return Notification.objects.bulk_create(rows)


def build_alert(rule: AlertRule, events: list[AlertEvent], now: datetime, *, is_test: bool = False) -> Alert:
    views = [event_view(e) for e in events]
    digest = bool(rule.digest_period_seconds()) and not is_test
    period_start = (rule.last_alert_at or rule.watch_since) if digest else None
    subject = subject_for(build_context(
        account_name=rule.account.name, rule_name=rule.name, views=views, total=len(events),
        is_test=is_test, period_start=period_start, digest=digest,
    ))
    return Alert.objects.create(
        account_id=rule.account_id, rule=rule, rule_name=rule.name, created=now,
        period_start=period_start, is_test=is_test, subject=subject, event_count=len(events),
    )


def process_rule(rule_id: int, now: datetime) -> Alert | None:
    """Collect the rule's new events and, if due, gather the pending ones into an alert."""
    with transaction.atomic():
        rule = _lock(AlertRule.objects.filter(pk=rule_id, enabled=True)).first()
        if rule is None:
            return None  # disabled, deleted, or another process has it right now
        collect_rule(rule, now)
        pending = rule.alert_events.filter(alert__isnull=True)
        if not _due(rule, pending, now):
            return None
        events = list(pending.order_by("occurred_at", "id"))
        if not events:
            return None  # dropped meanwhile, with the rule being deleted
        alert = build_alert(rule, events, now)
        # The rule row is ours: no other process adds pending events to it meanwhile.
        pending.filter(pk__lte=max(e.pk for e in events)).update(alert=alert)
        create_notifications(alert, rule, now)
        rule.last_alert_at = now
        rule.save(update_fields=["last_alert_at"])
        return alert


def process_rules(now: datetime) -> int:
    built = 0
    for rule_id in AlertRule.objects.filter(enabled=True).order_by("id").values_list("pk", flat=True):
        try:
            if process_rule(rule_id, now) is not None:
                built += 1
        except Exception:
            # One broken rule must not stop the others (nor the delivery loop calling us).
            logger.exception("alert rule %s could not be processed", rule_id)
    return built


# --- Sending notifications ------------------------------------------------------------


def claim_next(start: datetime) -> Notification | None:
    """Lease the next due notification (of a pass that started at `start`)."""
    now = _clock(start)
    with transaction.atomic():
        qs = Notification.objects.filter(
            Q(status__in=IN_FLIGHT, next_attempt_at__lte=now)
            | Q(status=NotificationStatus.SENDING, lease_until__lt=now)
        ).order_by("next_attempt_at", "id")
        n = _lock(qs).first()
        if n is None:
            return None
        n.status = NotificationStatus.SENDING
        n.lease_until = now + send_lease()
        n.attempts += 1
        n.last_attempt_at = now
        n.save(update_fields=["status", "lease_until", "attempts", "last_attempt_at"])
        return n


def channel_for(n: Notification) -> BaseChannel:
    if n.channel == Channel.WEBHOOK:
        rule = n.alert.rule
        secret = rule.get_webhook_secret() if rule else ""
        if not secret:
            raise ChannelError("the rule has no webhook secret any more", permanent=True)
        return WebhookChannel(n.target, secret, delivery_id=str(n.pk))
    return EmailChannel(n.target)


def deliver(
    n: Notification, start: datetime, *, max_attempts: int | None = None,
    rendered: dict[int, AlertContent] | None = None,
) -> bool:
    """Send one claimed notification and record the outcome. True if it was sent.

    `start`: when the pass began (see `_clock`). `rendered`: the content of alerts
    already rendered in this pass, by alert id (the notifications of one alert say the
    same thing to each target).
    """
    error, permanent = "", False
    rendered = {} if rendered is None else rendered
    try:
        if n.alert_id not in rendered:
            rendered[n.alert_id] = render_alert(n.alert)
        channel_for(n).notify(rendered[n.alert_id])
    except ChannelError as exc:
        error, permanent = str(exc), exc.permanent
    except Exception as exc:
        logger.exception("alert notification %s failed unexpectedly", n.pk)
        error = f"internal error: {exc.__class__.__name__}"
    finished = _clock(start)
    delays = retry_delays()
    limit = max_attempts if max_attempts is not None else len(delays) + 1
    fields: dict[str, object] = {"lease_until": None, "error": error[:2000]}
    metrics.ALERTS.labels(n.channel, "failed" if error else "sent").inc()
    if not error:
        fields.update(status=NotificationStatus.SENT, sent_at=finished)
    elif permanent or n.attempts >= limit:
        fields.update(status=NotificationStatus.FAILED)
        logger.warning("alert notification %s to %s failed: %s", n.pk, n.target_display, error)
    else:
        delay = delays[min(n.attempts - 1, len(delays) - 1)] if delays else 0
        fields.update(status=NotificationStatus.RETRYING, next_attempt_at=finished + timedelta(seconds=delay))
        logger.info("alert notification %s to %s will be retried: %s", n.pk, n.target_display, error)
    # Only the holder of this attempt may write its result.
    Notification.objects.filter(pk=n.pk, status=NotificationStatus.SENDING, attempts=n.attempts).update(**fields)
    for key, value in fields.items():
        setattr(n, key, value)
    return not error


def send_due(start: datetime, limit: int = 500) -> int:
    rendered: dict[int, AlertContent] = {}
    sent = 0
    while sent < limit:
        n = claim_next(start)
        if n is None:
            break
        deliver(n, start, rendered=rendered)
        sent += 1
    return sent


def run_once(now: datetime | None = None) -> int:
    """Collect new events, build due alerts, send due notifications.

    Returns how many notifications were attempted. Safe to call from several processes.
    """
    now = now or timezone.now()
    process_rules(now)
    sent = send_due(now)
    try:
        prune_hourly(now)
    except Exception:
        logger.exception("pruning old alerts failed")
    return sent
