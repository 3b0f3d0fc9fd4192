"""Helpers for alert tests: failed deliveries and relay events as the relay and the
delivery workers write them, and rules created through `alerts.rules`."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from alerts.models import AlertRule
from alerts.rules import create_rule
from relay.models import Message, Recipient, RecipientStatus, RelayEvent
from tests.fake_upstream import queue_message


def later(seconds: float = 120) -> datetime:
    return timezone.now() + timedelta(seconds=seconds)


def make_rule(account: Any, *, smtp_users: Any = (), **data: Any) -> AlertRule:
    fields = {
        "name": "Failures",
        "events": ["delivery_failed", "delivery_expired"],
        "frequency": "as_needed",
        "email_recipients": "ops@acme.test",
        "all_users": not smtp_users,
    }
    fields.update(data)
    rule, _ = create_rule(account, fields, smtp_users)
    return backdate(rule)


def backdate(rule: AlertRule) -> AlertRule:
    """Start the rule a few seconds ago, so rows a test writes next are clearly after it."""
    past = timezone.now() - timedelta(seconds=5)
    AlertRule.objects.filter(pk=rule.pk).update(watch_since=past, last_alert_at=past)
    rule.refresh_from_db()
    return rule


def failed_message(
    smtp_user: Any,
    recipients: list[str],
    *,
    code: int | None = 550,
    enhanced: str = "5.1.1",
    text: str = "User unknown",
    fail_reason: str = "",
    attempts: int = 1,
    finished_at: datetime | None = None,
    **kwargs: Any,
) -> Message:
    """A message whose recipients the delivery worker marked failed."""
    message = queue_message(smtp_user, recipients, **kwargs)
    Recipient.objects.filter(message=message).update(
        status=RecipientStatus.FAILED, attempts=attempts, last_code=code,
        last_enhanced=enhanced, last_text=text, fail_reason=fail_reason,
        finished_at=finished_at or timezone.now(),
    )
    return message


def relay_event(smtp_user: Any, kind: str, **fields: Any) -> RelayEvent:
    fields.setdefault("client_ip", "192.0.2.10")
    fields.setdefault("port", 587)
    return RelayEvent.objects.create(
        account=smtp_user.account if smtp_user else None,
        smtp_user=smtp_user,
        username=smtp_user.username if smtp_user else fields.pop("username", "nobody"),
        kind=kind,
        **fields,
    )


def closed_port() -> int:
    """A loopback port nothing listens on (just bound and released): connections are refused."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def broken_email(settings):
    """Django's SMTP email backend pointed at a port that refuses connections."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port(), 2
    return settings


@pytest.fixture(autouse=True)
def _alert_settings(settings):
    settings.SMTPPLUS_CONSOLE_URL = "https://console.example.com"
    settings.ALERTS_FROM_EMAIL = "alerts@smtpplus.example.com"
