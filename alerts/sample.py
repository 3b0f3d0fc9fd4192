""""Send test alert": a realistic sample event through the rule's channels, right now."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.audit import Actor
from accounts.models import SmtpUser
from alerts.content import AlertContent
from alerts.models import AlertEvent, AlertRule, EventType, Notification
from alerts.sending import build_alert, create_notifications, deliver
from relay.models import FailReason


def _sample_user(rule: AlertRule) -> SmtpUser | None:
    users = SmtpUser.objects.filter(account=rule.account)
    if not rule.all_users:
        users = users.filter(pk__in=rule.smtp_users.values("pk"))
    return users.order_by("name", "username").first()


def sample_data(rule: AlertRule) -> dict[str, Any]:
    now = timezone.now()
    user = _sample_user(rule)
    domain = "example.com"
    if user is not None:
        first = user.authorized_domains.first()
        domain = first.domain if first else domain
    return {
        "smtp_user": (user.name or user.username) if user else "Sample SMTP+ user",
        "smtp_username": user.username if user else "smtp-example",
        "smtp_user_id": user.pk if user else None,
        "message_id": None,
        "queue_id": "TEST",
        "envelope_from": f"newsletter@{domain}",
        "header_from": f"Newsletter <newsletter@{domain}>",
        "subject": "Your order #1042 has shipped",
        "recipient": "no.such.person@example.net",
        "status": "failed",
        "queued_at": (now - timedelta(minutes=2)).isoformat(),
        "finished_at": now.isoformat(),
        "attempts": 1,
        "code": 550,
        "enhanced": "5.1.1",
        "text": "The email account that you tried to reach does not exist.",
        "fail_reason": FailReason.REJECTED.value,
        "last_reason": FailReason.REJECTED.value,
    }


def send_test_alert(rule: AlertRule, actor: Actor | None = None) -> list[Notification]:
    """Build a test alert with one sample failed delivery and send it through every
    channel of the rule at once (no retries: the admin sees the result immediately)."""
    now = timezone.now()
    event = AlertEvent(
        account_id=rule.account_id, rule=rule, kind=EventType.DELIVERY_FAILED,
        source_key=f"test:{uuid.uuid4().hex}", occurred_at=now, created=now,
        data=sample_data(rule),
    )
    with transaction.atomic():
        # The sample event is saved already part of its test alert: never pending, so the
        # alert sender cannot take it into a real alert.
        event.alert = build_alert(rule, [event], now, is_test=True)
        event.save()
        notifications = create_notifications(event.alert, rule, now, claimed=True)
    rendered: dict[int, AlertContent] = {}
    for n in notifications:
        deliver(n, now, max_attempts=1, rendered=rendered)
    audit.record(
        "alert_rule.test", account=rule.account, actor=actor, target=rule,
        details={"sent": [n.target_display for n in notifications if not n.error],
                 "failed": [n.target_display for n in notifications if n.error]},
    )
    return notifications
