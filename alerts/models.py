"""Alert rules, the events they matched, the alerts built from them, and every attempt to
send one (the notifications log).

An event source (a failed recipient, a relay event, a burst of failed logins) becomes an
`AlertEvent` of one rule at most once: `(rule, source_key)` is unique, so several alert
workers, or one restarted, cannot alert twice for the same thing. Pending events of a rule
are gathered into one `Alert` (coalesced, or a digest), sent as one `Notification` per
channel target.
"""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from accounts.credentials import decrypt_password
from accounts.models import Account, SmtpUser
from alerts.redaction import redacted_url


class EventType(models.TextChoices):
    DELIVERY_FAILED = "delivery_failed", "Delivery failed permanently"
    DELIVERY_EXPIRED = "delivery_expired", "Delivery expired (gave up after retries)"
    DELIVERY_DELAYED = "delivery_delayed", "Still not delivered after N minutes"
    SENDER_REJECTED = "sender_rejected", "Sender rejected (not authorized)"
    LOGIN_FAILURES = "login_failures", "Failed logins above a threshold"
    RATE_LIMITED = "rate_limited", "Hourly limit reached"
    DOMAIN_LAPSED = "domain_lapsed", "Sending domain lapsed (or taken by another account)"
    DOMAIN_AUTH_BROKEN = "domain_auth_broken", "Domain authentication broken"
    RECIPIENT_SUPPRESSED = "recipient_suppressed", "Recipient refused: on the suppression list"


DELIVERY_EVENTS = (
    EventType.DELIVERY_FAILED,
    EventType.DELIVERY_EXPIRED,
    EventType.DELIVERY_DELAYED,
)


class Frequency(models.TextChoices):
    AS_NEEDED = "as_needed", "As needed (within a minute)"
    HOURLY = "hourly", "Hourly digest"
    DAILY = "daily", "Daily digest"


class AlertRule(models.Model):
    account = models.ForeignKey(Account, models.CASCADE, related_name="alert_rules")
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    # A list of EventType values.
    events: models.JSONField[Any, Any] = models.JSONField(default=list)
    delay_minutes = models.PositiveIntegerField(
        default=60, help_text="For “still not delivered”: minutes since the message was queued."
    )
    login_threshold = models.PositiveIntegerField(
        default=10, help_text="Failed logins for one SMTP+ user or from one IP …"
    )
    login_window_minutes = models.PositiveIntegerField(default=10, help_text="… within this window.")
    all_users = models.BooleanField(default=True)
    smtp_users = models.ManyToManyField(SmtpUser, blank=True, related_name="+")
    frequency = models.CharField(
        max_length=10, choices=Frequency.choices, default=Frequency.AS_NEEDED
    )
    # One address per line.
    email_recipients = models.TextField(blank=True)
    webhook_url = models.CharField(max_length=2000, blank=True)
    # Fernet token of the HMAC secret (accounts.credentials keys). Never the plain text.
    webhook_secret_encrypted = models.TextField(blank=True)
    created = models.DateTimeField(default=timezone.now)
    changed = models.DateTimeField(auto_now=True)
    # Sources older than this are never alerted (set at creation and when re-enabled).
    watch_since = models.DateTimeField(default=timezone.now)
    # The collector's watermark: sources are looked up from here minus a look-back.
    collected_until = models.DateTimeField(null=True, blank=True)
    # When the last alert of this rule was built (the start of the next digest).
    last_alert_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["enabled"], name="alertrule_enabled")]

    def __str__(self) -> str:
        return self.name

    @property
    def email_list(self) -> list[str]:
        return [line.strip() for line in self.email_recipients.splitlines() if line.strip()]

    @property
    def unread_emails(self) -> list[str]:
        """Recipients at a host that is no mail domain (the first account's login
        `admin@localhost`, `*.local`): alerts sent there reach no one."""
        unread = []
        for email in self.email_list:
            host = email.rpartition("@")[2].lower().rstrip(".")
            if "." not in host or host.endswith((".localhost", ".local", ".invalid")):
                unread.append(email)
        return unread

    def event_labels(self) -> list[str]:
        labels = dict(EventType.choices)
        return [str(labels.get(e, e)) for e in self.events]

    def digest_period_seconds(self) -> int:
        return {Frequency.HOURLY: 3600, Frequency.DAILY: 86400}.get(
            Frequency(self.frequency), 0
        )

    @property
    def webhook_display(self) -> str:
        return redacted_url(self.webhook_url)

    def get_webhook_secret(self) -> str:
        return decrypt_password(self.webhook_secret_encrypted) if self.webhook_secret_encrypted else ""


class Alert(models.Model):
    """One message about one or more events of a rule: coalesced, a digest, or a test."""

    account = models.ForeignKey(Account, models.CASCADE, related_name="alerts")
    rule = models.ForeignKey(AlertRule, models.SET_NULL, null=True, blank=True, related_name="alerts")
    rule_name = models.CharField(max_length=200)
    created = models.DateTimeField(default=timezone.now)
    # Digests: the events since this time (the previous alert of the rule).
    period_start = models.DateTimeField(null=True, blank=True)
    is_test = models.BooleanField(default=False)
    subject = models.CharField(max_length=500)
    event_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-created", "-id"]


class AlertEvent(models.Model):
    """One source event matched by one rule. Unique per (rule, source_key)."""

    account = models.ForeignKey(Account, models.CASCADE, related_name="+")
    # Kept (rule emptied) when the rule is deleted: the notifications log still lists
    # the events each alert covered.
    rule = models.ForeignKey(
        AlertRule, models.SET_NULL, null=True, blank=True, related_name="alert_events"
    )
    kind = models.CharField(max_length=20, choices=EventType.choices)
    # "rcpt:<id>", "relayevent:<id>", "logins:user:<id>:<bucket>", "test:<uuid>" …
    source_key = models.CharField(max_length=200)
    occurred_at = models.DateTimeField()
    created = models.DateTimeField(default=timezone.now)
    # A snapshot of what the alert says (addresses, subject, reply…): the source row may
    # be pruned before the digest goes out. Never a password or a message body.
    data: models.JSONField[Any, Any] = models.JSONField(default=dict)
    alert = models.ForeignKey(
        Alert, models.SET_NULL, null=True, blank=True, related_name="events"
    )

    class Meta:
        ordering = ["occurred_at", "id"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "source_key"], name="alertevent_once_per_rule")
        ]
        indexes = [
            models.Index(
                fields=["rule", "occurred_at"],
                name="alertevent_pending",
                condition=models.Q(alert__isnull=True),
            )
        ]


class Channel(models.TextChoices):
    EMAIL = "email", "Email"
    WEBHOOK = "webhook", "Webhook"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    RETRYING = "retrying", "Retrying"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class Notification(models.Model):
    """Sending one alert through one channel to one target; `error` "" means success."""

    alert = models.ForeignKey(Alert, models.CASCADE, related_name="notifications")
    account = models.ForeignKey(Account, models.CASCADE, related_name="+")
    channel = models.CharField(max_length=10, choices=Channel.choices)
    target = models.CharField(max_length=2000)  # an email address or the webhook URL
    status = models.CharField(
        max_length=10, choices=NotificationStatus.choices, default=NotificationStatus.PENDING
    )
    created = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    lease_until = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="notification_due",
                condition=models.Q(status__in=["pending", "retrying", "sending"]),
            ),
            models.Index(fields=["account", "-created"], name="notification_account"),
        ]

    @property
    def target_display(self) -> str:
        """The target as pages, logs and audit rows show it (no webhook password)."""
        return redacted_url(self.target) if self.channel == Channel.WEBHOOK else self.target

