"""Sending domains: an account's proof that it owns a domain, what happened to it, and
its DKIM keys."""

from __future__ import annotations

from typing import Any

from django.db import models
from django.utils import timezone

from accounts.models.accounts import Account
from smtpplus.addresses import domain_to_unicode


class DomainStatus(models.TextChoices):
    UNVERIFIED = "unverified", "Unverified"
    VERIFIED = "verified", "Verified"
    LAPSED = "lapsed", "Lapsed"


class VerifiedHow(models.TextChoices):
    DNS = "dns", "DNS record"
    UPGRADE = "upgrade", "Verified at upgrade"
    OPERATOR = "operator", "Marked verified by an operator"


class SendingDomain(models.Model):
    """A domain an account sends as, and its proof of ownership (`accounts.domains.ownership`).

    Unverified until the account publishes `_smtpplus.<domain> TXT
    "smtpplus-verification=<token>"`. A verified domain belongs to one account: the
    constraint below admits one verified row per domain, except rows verified at upgrade
    (several accounts may have authorized the same domain before verification existed;
    the first to prove it by DNS keeps it).
    """

    account = models.ForeignKey(Account, models.CASCADE, related_name="sending_domains")
    # A-label, lower case, no trailing dot (as authorized domains).
    domain = models.CharField(max_length=253)
    token = models.CharField(max_length=64)
    status = models.CharField(
        max_length=12, choices=DomainStatus.choices, default=DomainStatus.UNVERIFIED
    )
    verified_how = models.CharField(max_length=12, choices=VerifiedHow.choices, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    # The account's SMTP+ users may be authorized for subdomains of this domain too.
    include_subdomains = models.BooleanField(default=False)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # The findings of the last check (verification, DKIM, SPF, DMARC), as shown.
    check_result: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    # When a verified domain's TXT record was first found missing (lapse grace period).
    record_missing_since = models.DateTimeField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(fields=["account", "domain"], name="sendingdomain_unique"),
            models.UniqueConstraint(
                fields=["domain"],
                condition=models.Q(status="verified") & ~models.Q(verified_how="upgrade"),
                name="sendingdomain_one_owner",
            ),
        ]

    def __str__(self) -> str:
        return self.display

    @property
    def display(self) -> str:
        return domain_to_unicode(self.domain)

    @property
    def is_active(self) -> bool:
        """Whether the account's users may send as it (and it is DKIM-signed)."""
        return self.status == DomainStatus.VERIFIED

    @property
    def verification_name(self) -> str:
        return f"_smtpplus.{self.domain}"

    @property
    def verification_value(self) -> str:
        return f"smtpplus-verification={self.token}"

    def covers(self, domain: str) -> bool:
        """Whether `domain` (an A-label) is this domain or, when it opts in, a subdomain."""
        return domain == self.domain or (
            self.include_subdomains and domain.endswith("." + self.domain)
        )


class DomainEventKind(models.TextChoices):
    VERIFIED = "verified", "Sending domain verified"
    LAPSED = "lapsed", "Sending domain lapsed"
    AUTH_BROKEN = "auth_broken", "Domain authentication broken"
    CLAIMED = "claimed_by_other_account", "Sending domain claimed by another account"


class DomainEvent(models.Model):
    """Something that happened to a sending domain that an account may want an alert
    for (alerts.collect reads these): verified, lapsed, authentication broken, claimed."""

    account = models.ForeignKey(Account, models.CASCADE, related_name="domain_events")
    # SET_NULL: the event outlives a removed domain; `domain` keeps its name.
    sending_domain = models.ForeignKey(
        SendingDomain, models.SET_NULL, null=True, blank=True, related_name="events"
    )
    domain = models.CharField(max_length=253)  # A-label
    kind = models.CharField(max_length=30, choices=DomainEventKind.choices)
    # "reason": one line for people; "findings": the findings that caused it.
    details: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["account", "-created"])]

    def __str__(self) -> str:
        return f"{self.domain}: {self.kind}"

    @property
    def display(self) -> str:
        return domain_to_unicode(self.domain)

    @property
    def reason(self) -> str:
        return str(self.details.get("reason", ""))


class DkimAlgorithm(models.TextChoices):
    RSA = "rsa", "RSA-SHA256"
    ED25519 = "ed25519", "Ed25519-SHA256"


class DkimKeyState(models.TextChoices):
    PENDING = "pending", "Pending (publish it)"
    ACTIVE = "active", "Active"
    RETIRING = "retiring", "Retiring"
    RETIRED = "retired", "Retired"


class DkimKey(models.Model):
    """A DKIM key pair of a sending domain; the private part is encrypted at rest with
    the credential keys and never shown."""

    sending_domain = models.ForeignKey(SendingDomain, models.CASCADE, related_name="dkim_keys")
    selector = models.CharField(max_length=63)
    algorithm = models.CharField(
        max_length=10, choices=DkimAlgorithm.choices, default=DkimAlgorithm.RSA
    )
    private_key_encrypted = models.TextField()
    # The base64 `p=` value of the record to publish.
    public_key = models.TextField()
    state = models.CharField(
        max_length=10, choices=DkimKeyState.choices, default=DkimKeyState.PENDING
    )
    created = models.DateTimeField(default=timezone.now)
    activated_at = models.DateTimeField(null=True, blank=True)
    retiring_since = models.DateTimeField(null=True, blank=True)
    retired_at = models.DateTimeField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    # "match", "missing", "mismatch" or "error: …" from the last check of the record.
    dns_status = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["sending_domain", "created", "id"]
        constraints = [
            models.UniqueConstraint(fields=["sending_domain", "selector"], name="dkimkey_unique")
        ]

    def __str__(self) -> str:
        return f"{self.selector}._domainkey.{self.sending_domain.domain} ({self.algorithm})"

    @property
    def record_name(self) -> str:
        return f"{self.selector}._domainkey.{self.sending_domain.domain}"
