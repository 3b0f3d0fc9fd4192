"""What the SMTP relay processes record about themselves and their clients: relay events
(refusals, failed logins, limit hits), the relay nodes' heartbeats, connection
statistics, and the failed-login counts and cool-offs every process shares."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from accounts.models import Account, SmtpUser


class EventKind(models.TextChoices):
    AUTH_FAILED = "auth_failed", "Failed login"
    AUTH_COOLOFF = "auth_cooloff", "Client in login cool-off"
    TLS_REQUIRED = "tls_required", "AUTH before TLS"
    AUTH_REQUIRED = "auth_required", "Sending without login"
    SENDER_REJECTED = "sender_rejected", "Envelope sender not authorized"
    FROM_REJECTED = "from_rejected", "From header not authorized"
    BAD_ADDRESS = "bad_address", "Malformed address"
    SIZE_EXCEEDED = "size_exceeded", "Message too large"
    TOO_MANY_RECIPIENTS = "too_many_rcpts", "Too many recipients"
    RATE_LIMITED = "rate_limited", "Hourly limit reached"
    CONNECTION_LIMIT = "conn_limit", "Too many connections"
    STORE_FAILED = "store_failed", "Could not store message"
    SESSION_REVOKED = "session_revoked", "Session closed after an admin change"
    BAD_MESSAGE = "bad_message", "Malformed message"
    # Written by the console's "unblock now"; every relay process lifts the cool-off.
    COOLOFF_RELEASED = "cooloff_released", "Cool-off lifted by an admin"
    SUPPRESSED = "suppressed", "Recipient on the suppression list"


# The reason of the AUTH_COOLOFF event that starts a cool-off (the later ones, for
# connections refused during it, say "connection during cool-off").
COOLOFF_STARTED = "cool-off started"


class RelayEvent(models.Model):
    """A rejection or failed login, so admins can see why a message was not sent.

    Under a flood, identical events (same kind, client IP, username, address) within a
    minute are folded into one row whose `count` grows, instead of one row each.
    """

    account = models.ForeignKey(
        Account, models.CASCADE, null=True, blank=True, related_name="relay_events"
    )
    smtp_user = models.ForeignKey(
        SmtpUser, models.SET_NULL, null=True, blank=True, related_name="relay_events"
    )
    kind = models.CharField(max_length=20, choices=EventKind.choices)
    created = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    count = models.PositiveIntegerField(default=1)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    username = models.CharField(max_length=320, blank=True)  # as the client typed it
    # The address involved (rejected sender, From header, bad recipient), if any.
    address = models.CharField(max_length=998, blank=True)
    # The precise reason for admins ("wrong password", "user disabled", which rule…).
    reason = models.CharField(max_length=500, blank=True)
    reply = models.CharField(max_length=500, blank=True)  # what the client was told

    class Meta:
        ordering = ["-last_seen", "-id"]
        indexes = [
            models.Index(fields=["account", "-last_seen"], name="event_account_seen"),
            models.Index(fields=["smtp_user", "kind", "-last_seen"], name="event_user_kind"),
            models.Index(fields=["username", "-last_seen"], name="event_username"),
            models.Index(fields=["client_ip", "kind", "-last_seen"], name="event_ip_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.username or self.client_ip}"


class RelayNode(models.Model):
    """A running relay process: where it listens, and a heartbeat the console checks."""

    # RELAY_NODE_NAME, by default "host:pid".
    node_id = models.CharField(max_length=200, unique=True)
    hostname = models.CharField(max_length=255)
    # [{"host": "0.0.0.0", "port": 587, "tls": "starttls"|"implicit"|"none"}, ...]
    listeners: models.JSONField[Any, Any] = models.JSONField(default=list)
    started = models.DateTimeField(default=timezone.now)
    heartbeat = models.DateTimeField(default=timezone.now, db_index=True)
    stopped = models.DateTimeField(null=True, blank=True)
    version = models.CharField(max_length=40, blank=True)
    # Messages the node accepted in the minute before its last heartbeat.
    accepted_last_minute = models.PositiveIntegerField(default=0)
    # Its open connections per client IP ({"192.0.2.1": 3}) as of `synced`, which the
    # other nodes add to their own for RELAY_MAX_CONNECTIONS_PER_IP (relay/smtp/shared.py).
    connections: models.JSONField[Any, Any] = models.JSONField(default=dict)
    synced = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-heartbeat"]

    def __str__(self) -> str:
        return self.node_id


class ConnectionStat(models.Model):
    """Connections per hour, per port and (once logged in) per SMTP+ user.

    Answers the troubleshooter's "has this user's client reached us at all, and on which
    port?" without a row per connection.
    """

    hour = models.DateTimeField()
    port = models.PositiveIntegerField()
    smtp_user = models.ForeignKey(
        SmtpUser, models.CASCADE, null=True, blank=True, related_name="connection_stats"
    )
    connections = models.PositiveIntegerField(default=0)
    logins = models.PositiveIntegerField(default=0)
    # Of those logins, the ones made over TLS (STARTTLS or implicit TLS).
    tls_logins = models.PositiveIntegerField(default=0)
    last_seen = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["hour", "port", "smtp_user"], name="connstat_unique"
            ),
            # NULLs are distinct in the constraint above: the per-port row (no user yet)
            # needs its own, or two relay processes could each create it.
            models.UniqueConstraint(
                fields=["hour", "port"], condition=models.Q(smtp_user__isnull=True),
                name="connstat_unique_no_user",
            ),
        ]
        indexes = [models.Index(fields=["smtp_user", "-hour"], name="connstat_user_hour")]


class LoginFailureCount(models.Model):
    """Failed logins from one client IP in one `bucket` (10 s), added by every relay
    process at its limit sync: their sum over RELAY_AUTH_FAILURE_WINDOW starts a cool-off
    whichever processes the failures met."""

    client_ip = models.GenericIPAddressField()
    bucket = models.DateTimeField()
    count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client_ip", "bucket"], name="loginfail_ip_bucket"),
        ]
        indexes = [models.Index(fields=["bucket"], name="loginfail_bucket")]

    def __str__(self) -> str:
        return f"{self.client_ip} {self.bucket:%H:%M:%S} {self.count}"


class ClientCooloff(models.Model):
    """A client IP's failed-login cool-off, as every relay process applies it.

    Written by the process that starts it, lifted by the console's "unblock now"
    (`until` set to the release time); each process reads the rows `changed` since its
    last limit sync (relay/smtp/shared.py)."""

    client_ip = models.GenericIPAddressField(unique=True)
    started = models.DateTimeField()
    until = models.DateTimeField()
    changed = models.DateTimeField(db_index=True)
    # Whose username started it (the account that sees it and may lift it).
    username = models.CharField(max_length=320, blank=True)
    account = models.ForeignKey(Account, models.SET_NULL, null=True, blank=True,
                                related_name="+")
    smtp_user = models.ForeignKey(SmtpUser, models.SET_NULL, null=True, blank=True,
                                  related_name="+")

    def __str__(self) -> str:
        return f"{self.client_ip} until {self.until:%H:%M:%S}"
