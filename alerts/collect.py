"""Find new events for a rule by polling the queue and relay-event tables.

Decoupled from the relay and the delivery workers: nothing calls us when a delivery fails.
Each rule keeps a watermark (`collected_until`); every pass looks from the watermark minus
a look-back (rows whose transaction committed late are still found), and the unique
`(rule, source_key)` constraint drops what an earlier pass already recorded. Passes of
one rule are serialised by a lock on the rule row (see sending.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet, Sum

from alerts import domain_events
from alerts.models import AlertEvent, AlertRule, EventType
from relay.models import (
    PENDING_STATUSES,
    EventKind,
    FailReason,
    Recipient,
    RecipientStatus,
    RelayEvent,
)

SENDER_KINDS = (EventKind.SENDER_REJECTED, EventKind.FROM_REJECTED)
FAILURE_KINDS = {EventType.DELIVERY_FAILED, EventType.DELIVERY_EXPIRED}


def lookback() -> timedelta:
    return timedelta(seconds=settings.ALERTS_LOOKBACK_SECONDS)


def _iso(moment: datetime | None) -> str:
    return moment.isoformat() if moment else ""


def _user_fields(smtp_user: Any, fallback_username: str = "") -> dict[str, Any]:
    if smtp_user is None:
        return {"smtp_user": fallback_username, "smtp_username": fallback_username, "smtp_user_id": None}
    return {
        "smtp_user": smtp_user.name or smtp_user.username,
        "smtp_username": smtp_user.username,
        "smtp_user_id": smtp_user.pk,
    }


def recipient_data(r: Recipient) -> dict[str, Any]:
    """What an alert says about one recipient. No password, no message body."""
    m = r.message
    return {
        **_user_fields(r.smtp_user),
        "message_id": m.pk,
        "queue_id": m.queue_id,
        "envelope_from": m.envelope_from,
        "header_from": m.header_from,
        "subject": m.subject,
        "recipient": r.address,
        "status": r.status,
        "queued_at": _iso(m.created),
        "finished_at": _iso(r.finished_at),
        "attempts": r.attempts,
        "code": r.last_code,
        "enhanced": r.last_enhanced,
        "text": r.last_text,
        "fail_reason": r.fail_reason,
        "last_reason": r.last_reason,
    }


def relay_event_data(ev: RelayEvent) -> dict[str, Any]:
    return {
        **_user_fields(ev.smtp_user, ev.username),
        "relay_event_id": ev.pk,
        "relay_kind": ev.kind,
        "client_ip": ev.client_ip or "",
        "port": ev.port,
        "username": ev.username,
        "address": ev.address,
        "reason": ev.reason,
        "reply": ev.reply,
        "count": ev.count,
        "first_seen": _iso(ev.created),
        "last_seen": _iso(ev.last_seen),
    }


def _scoped(rule: AlertRule, qs: QuerySet[Any]) -> QuerySet[Any]:
    if rule.all_users:
        return qs
    return qs.filter(smtp_user__in=rule.smtp_users.all())


def _failed(rule: AlertRule, since: datetime, kinds: set[str]) -> list[AlertEvent]:
    """Permanent failures and expiries (`kinds`: either or both), in one query. Cancelled
    recipients have their own status and are never alerted."""
    qs = Recipient.objects.filter(account_id=rule.account_id, status=RecipientStatus.FAILED).filter(
        Q(finished_at__gt=since) | Q(finished_at__isnull=True, created__gt=since)
    )
    if EventType.DELIVERY_FAILED not in kinds:
        qs = qs.filter(fail_reason=FailReason.EXPIRED)
    elif EventType.DELIVERY_EXPIRED not in kinds:
        qs = qs.exclude(fail_reason=FailReason.EXPIRED)
    events = []
    for r in _scoped(rule, qs).select_related("message", "smtp_user").order_by("id"):
        kind = EventType.DELIVERY_EXPIRED if r.fail_reason == FailReason.EXPIRED else EventType.DELIVERY_FAILED
        events.append(AlertEvent(
            kind=kind, source_key=f"{kind}:rcpt:{r.pk}",
            occurred_at=r.finished_at or r.created, data=recipient_data(r),
        ))
    return events


def _delayed(rule: AlertRule, since: datetime, now: datetime) -> list[AlertEvent]:
    delay = timedelta(minutes=rule.delay_minutes)
    # Recipients whose age crossed the delay since the last pass (and the look-back).
    qs = Recipient.objects.filter(
        account_id=rule.account_id, status__in=PENDING_STATUSES,
        created__lte=now - delay, created__gt=since - delay,
    )
    events = []
    for r in _scoped(rule, qs).select_related("message", "smtp_user").order_by("id"):
        data = recipient_data(r)
        data["delayed_minutes"] = rule.delay_minutes
        events.append(AlertEvent(
            kind=EventType.DELIVERY_DELAYED, source_key=f"delivery_delayed:rcpt:{r.pk}",
            occurred_at=r.created + delay, data=data,
        ))
    return events


def _hour(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H")


def _relay_events(rule: AlertRule, since: datetime, kinds: Iterable[str], type_: str) -> list[AlertEvent]:
    """One alert event per SMTP+ user (and sender address) per hour: a client that keeps
    retrying would otherwise alert every minute."""
    qs = RelayEvent.objects.filter(account_id=rule.account_id, kind__in=list(kinds), last_seen__gt=since)
    events: dict[str, AlertEvent] = {}
    for ev in _scoped(rule, qs).select_related("smtp_user").order_by("created", "id"):
        who = ev.smtp_user_id or ev.username
        addr = ev.address.lower() if type_ in (EventType.SENDER_REJECTED, EventType.RECIPIENT_SUPPRESSED) else ""
        key = f"{type_}:{who}:{addr}:{_hour(ev.created)}"
        if key in events:
            events[key].data["count"] += ev.count
            continue
        events[key] = AlertEvent(kind=type_, source_key=key, occurred_at=ev.created, data=relay_event_data(ev))
    return list(events.values())


def _login_failures(rule: AlertRule, now: datetime) -> list[AlertEvent]:
    window = timedelta(minutes=rule.login_window_minutes)
    start = max(now - window, rule.watch_since)
    qs = _scoped(rule, RelayEvent.objects.filter(
        account_id=rule.account_id, kind=EventKind.AUTH_FAILED, last_seen__gt=start,
    ))
    recent = AlertEvent.objects.filter(
        rule=rule, kind=EventType.LOGIN_FAILURES, created__gt=now - window
    ).values_list("source_key", flat=True)
    throttled = {key.rsplit(":", 1)[0] for key in recent}
    events: list[AlertEvent] = []
    alerted_users = {int(p.rsplit(":", 1)[1]) for p in throttled if p.startswith("logins:user:")}
    for field, label in (("smtp_user", "user"), ("client_ip", "ip")):
        rows = (
            qs.exclude(**{f"{field}__isnull": True}).values(field).annotate(total=Sum("count"))
            .filter(total__gte=rule.login_threshold).order_by(field)
        )
        for row in rows:
            prefix = f"logins:{label}:{row[field]}"
            if prefix in throttled:
                continue
            group = qs.filter(**{field: row[field]})
            sample = group.select_related("smtp_user").order_by("-last_seen", "-id").first()
            data = relay_event_data(sample) if sample else {}
            data.update({
                "count": row["total"], "window_minutes": rule.login_window_minutes, "group": label,
            })
            if label == "user":
                alerted_users.add(row[field])
            else:
                users = sorted(set(group.exclude(smtp_user=None).values_list("smtp_user_id", flat=True)))
                if len(users) == 1 and users[0] in alerted_users:
                    continue  # the same burst, already reported for its SMTP+ user
                names = sorted(set(group.values_list("username", flat=True)))
                # Several SMTP+ users may be tried from one address: name them all.
                data.update({"smtp_user": ", ".join(names), "smtp_user_id": None})
            # When the threshold was (last) crossed: the newest failure of the group.
            seen = sample.last_seen if sample else now
            events.append(AlertEvent(
                kind=EventType.LOGIN_FAILURES, source_key=f"{prefix}:{int(now.timestamp())}",
                occurred_at=min(seen, now), data=data,
            ))
    return events


def candidates(rule: AlertRule, now: datetime) -> list[AlertEvent]:
    """New alert events of `rule` (not saved; duplicates of earlier passes included)."""
    mark = rule.collected_until or rule.watch_since
    since = max(rule.watch_since, mark - lookback())
    found: list[AlertEvent] = []
    kinds = set(rule.events)
    if kinds & FAILURE_KINDS:
        found += _failed(rule, since, kinds)
    if EventType.DELIVERY_DELAYED in kinds:
        found += _delayed(rule, max(rule.watch_since, mark) - lookback(), now)
    if EventType.SENDER_REJECTED in kinds:
        found += _relay_events(rule, since, SENDER_KINDS, EventType.SENDER_REJECTED)
    if EventType.RATE_LIMITED in kinds:
        found += _relay_events(rule, since, [EventKind.RATE_LIMITED], EventType.RATE_LIMITED)
    if EventType.RECIPIENT_SUPPRESSED in kinds:
        found += _relay_events(rule, since, [EventKind.SUPPRESSED], EventType.RECIPIENT_SUPPRESSED)
    if EventType.LOGIN_FAILURES in kinds:
        found += _login_failures(rule, now)
    found += domain_events.candidates(rule.account_id, since, kinds)
    return found


def collect_rule(rule: AlertRule, now: datetime) -> None:
    """Record the rule's new events. Call with the rule locked."""
    found = candidates(rule, now)
    if found:
        keys = [e.source_key for e in found]
        existing: set[str] = set()
        for i in range(0, len(keys), 500):
            existing.update(
                AlertEvent.objects.filter(rule=rule, source_key__in=keys[i : i + 500])
                .values_list("source_key", flat=True)
            )
        fresh = [e for e in found if e.source_key not in existing]
        for e in fresh:
            e.rule = rule
            e.account_id = rule.account_id
            e.created = now
        # ignore_conflicts: the unique constraint is the final word if another process
        # recorded the same source in the meantime.
        AlertEvent.objects.bulk_create(fresh, ignore_conflicts=True, batch_size=500)
    rule.collected_until = now
    rule.save(update_fields=["collected_until"])
