"""Accounts, their members and invitations, SMTP+ users and their authorized senders,
the audit log, and the console's failed-login counters."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.credentials import decrypt_password, digest_password, encrypt_password
from smtpplus.addresses import display_email, domain_to_unicode


class Account(models.Model):
    """A customer (a company). Everything in the console belongs to one account."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=60, unique=True)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Role(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    VIEWER = "viewer", "Viewer"


class Membership(models.Model):
    account = models.ForeignKey(Account, models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.ADMIN)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["account", "user"], name="membership_unique_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.account} ({self.role})"

    @property
    def can_edit(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)

    @property
    def can_reveal(self) -> bool:
        return self.role in (Role.OWNER, Role.ADMIN)

    @property
    def is_owner(self) -> bool:
        return self.role == Role.OWNER


class Invitation(models.Model):
    """A one-time link that makes its holder a member of the account."""

    account = models.ForeignKey(Account, models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.ADMIN)
    # Only a SHA-256 digest of the token is stored; the token itself is in the link.
    token_digest = models.CharField(max_length=64, unique=True)
    invited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField()
    accepted = models.DateTimeField(null=True, blank=True)


class SmtpUser(models.Model):
    """Credentials an application or mail client uses to send through the relay."""

    account = models.ForeignKey(Account, models.CASCADE, related_name="smtp_users")
    name = models.CharField(max_length=200, blank=True)
    username = models.CharField(max_length=64, unique=True)
    # Fernet token of the password (keys: SMTPPLUS_CREDENTIAL_KEYS). Never the plain text.
    password_encrypted = models.TextField()
    # HMAC-SHA256 of the password: constant-time login checks without a slow KDF.
    password_digest = models.CharField(max_length=64)
    active = models.BooleanField(default=True)
    note = models.TextField(blank=True)
    priority = models.PositiveSmallIntegerField(
        default=3, help_text="Queue order: 1 is delivered first, 5 last."
    )
    hourly_limit = models.PositiveIntegerField(
        null=True, blank=True, help_text="Messages per hour; empty means no limit."
    )
    last_login_at = models.DateTimeField(null=True, blank=True)
    last_login_ip = models.GenericIPAddressField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now)
    changed = models.DateTimeField(auto_now=True)
    # Bumped by every change a running relay must apply to sessions already logged in
    # (`password_version` by a password reset only); see `mark_changed()`.
    version = models.PositiveIntegerField(default=1)
    password_version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["name", "username"]
        indexes = [models.Index(fields=["account", "name"])]

    def __str__(self) -> str:
        return self.name or self.username

    def get_absolute_url(self) -> str:
        return reverse("accounts:smtpuser_detail", args=[self.pk])

    def set_password(self, raw: str) -> None:
        self.password_encrypted = encrypt_password(raw)
        self.password_digest = digest_password(raw)

    def get_password(self) -> str:
        return decrypt_password(self.password_encrypted)

    def mark_changed(self, *, password: bool = False) -> None:
        """Tell running relays that this user's sessions must re-check what they cached
        at login (relay/revocation.py): call it in the transaction of the change."""
        bump: dict[str, Any] = {"version": F("version") + 1}
        if password:
            bump["password_version"] = F("password_version") + 1
        SmtpUser.objects.filter(pk=self.pk).update(**bump)


class AuthorizedDomain(models.Model):
    smtp_user = models.ForeignKey(SmtpUser, models.CASCADE, related_name="authorized_domains")
    # Stored as an A-label ("xn--..."), lower case, no trailing dot.
    domain = models.CharField(max_length=253)
    include_subdomains = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["domain"]
        constraints = [
            models.UniqueConstraint(fields=["smtp_user", "domain"], name="authdomain_unique")
        ]

    def __str__(self) -> str:
        return self.display

    @property
    def display(self) -> str:
        return domain_to_unicode(self.domain)


class AuthorizedEmail(models.Model):
    smtp_user = models.ForeignKey(SmtpUser, models.CASCADE, related_name="authorized_emails")
    # Local part as typed (compared case-insensitively), domain as an A-label.
    email = models.CharField(max_length=320)
    created = models.DateTimeField(default=timezone.now)
    # An address at a domain its account does not own is usable once the link mailed to
    # it has been followed (`confirmed_at`); "upgrade": authorized before confirmation
    # existed. Only a SHA-256 digest of the link's token is stored.
    confirmed_at = models.DateTimeField(null=True, blank=True)
    confirmed_how = models.CharField(max_length=20, blank=True)
    confirm_token_digest = models.CharField(max_length=64, blank=True, db_index=True)
    confirm_sent_at = models.DateTimeField(null=True, blank=True)
    confirm_expires = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(fields=["smtp_user", "email"], name="authemail_unique")
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def display(self) -> str:
        return display_email(self.email)


class AuditEvent(models.Model):
    """Who did what to which object, from where. Written by `accounts.audit.record`."""

    account = models.ForeignKey(
        Account, models.CASCADE, null=True, blank=True, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # "alice@example.com", or "command line: manage.py smtpuser create" for CLI actions.
    actor_label = models.CharField(max_length=300)
    action = models.CharField(max_length=60, db_index=True)
    target_type = models.CharField(max_length=60, blank=True)
    target_id = models.CharField(max_length=60, blank=True)
    target_label = models.CharField(max_length=300, blank=True)
    details: models.JSONField[Any, Any] = models.JSONField(default=dict, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [models.Index(fields=["account", "-created"])]

    def __str__(self) -> str:
        return f"{self.actor_label} {self.action} {self.target_label}"


class LoginFailureCount(models.Model):
    """Failed console password checks under one key — a client network, a username, or
    both — within a window that ends at `window_ends`. In the database so that every
    console process counts on the same rows (`smtpplus.login`)."""

    key = models.CharField(max_length=100, unique=True)
    failures = models.PositiveIntegerField(default=0)
    window_ends = models.DateTimeField(db_index=True)

    def __str__(self) -> str:
        return f"{self.key}: {self.failures}"


