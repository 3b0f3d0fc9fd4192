"""The HTTP API's keys, the send API's remembered answers, and the API's rate counters."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from accounts.models.accounts import Account, SmtpUser


class ApiKeyRole(models.TextChoices):
    ADMIN = "admin", "Admin"
    READ_ONLY = "read_only", "Read only"


class ApiKey(models.Model):
    """A bearer key for /api/v1/ on behalf of one account (`accounts.api.keys`).

    Only a keyed digest of the secret is stored: unlike SMTP+ passwords nobody ever needs
    to read a key back, so a database dump gives nothing to log in with. `prefix` (the
    first characters of the key) identifies it in lists and logs.
    """

    account = models.ForeignKey(Account, models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    role = models.CharField(max_length=10, choices=ApiKeyRole.choices, default=ApiKeyRole.READ_ONLY)
    prefix = models.CharField(max_length=20, unique=True)
    digest = models.CharField(max_length=64)
    # A send key: it sends through /api/v1/messages as this SMTP+ user and can call
    # nothing else. Empty: a management key (its role says what it may do).
    smtp_user = models.ForeignKey(
        SmtpUser, models.CASCADE, null=True, blank=True, related_name="api_keys"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    # Client networks allowed to use the key ("10.0.0.0/8", "2001:db8::/32"); empty: any.
    allowed_networks: models.JSONField[Any, Any] = models.JSONField(default=list, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def can_write(self) -> bool:
        return self.role == ApiKeyRole.ADMIN

    def is_usable(self, now: Any = None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class IdempotentRequest(models.Model):
    """The answer the send API gave to a request with an `Idempotency-Key`, so that a
    retry with the same key gets it again instead of queueing the message twice.

    `scope` is whose key it is ("key:<api key id>" or "user:<SMTP+ user id>"); the
    fingerprint is a digest of the request, so the same key with another body is
    refused. Kept 24 hours (`relay.sendapi.idempotency`)."""

    scope = models.CharField(max_length=40)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status = models.PositiveSmallIntegerField()
    response: models.JSONField[Any, Any] = models.JSONField(default=dict)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotent_request_unique")
        ]

    def __str__(self) -> str:
        return f"{self.scope} {self.key}"


class ApiRateCount(models.Model):
    """Calls (or failed logins) counted under one key within a window that ends at
    `window_ends`; in the database so that every console process counts on the same
    rows (`accounts.api.ratelimit`)."""

    key = models.CharField(max_length=100, unique=True)
    count = models.PositiveIntegerField(default=0)
    window_ends = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.count}"
