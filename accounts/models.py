from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from accounts.credentials import decrypt_password, digest_password, encrypt_password
from accounts.senders import domain_to_unicode


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
        # Not at the top: accounts.actions.senders imports this module.
        from accounts.actions.senders import display_email

        return display_email(self.email)


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
