from __future__ import annotations

from django.db import models
from django.db.models import F, Value
from django.db.models.functions import Lower, StrIndex, Substr
from django.utils import timezone

from accounts.models import Account, SmtpUser
from relay.models.smtp import (  # noqa: F401
    # The relay processes' own tables, imported from here like every model of the app.
    COOLOFF_STARTED,
    ClientCooloff,
    ConnectionStat,
    EventKind,
    LoginFailureCount,
    RelayEvent,
    RelayNode,
)


def recipient_domain(field: str = "address") -> Lower:
    """The domain of a recipient's address, lower case (what follows the first "@"): what
    the statistics count per domain, the log's domain filter compares, and the
    `rcpt_account_domain` index holds."""
    return Lower(Substr(field, StrIndex(field, Value("@")) + Value(1)))


class Message(models.Model):
    """One accepted message: envelope, a few decoded headers, and the raw bytes."""

    # No single-column indexes on account and smtp_user: the (account, -created) and
    # (smtp_user, -created) indexes below serve those lookups, and every index costs the
    # relay's store a write per message.
    account = models.ForeignKey(
        Account, models.CASCADE, related_name="messages", db_index=False
    )
    smtp_user = models.ForeignKey(
        SmtpUser, models.SET_NULL, null=True, blank=True, related_name="messages",
        db_index=False,
    )
    # Short public id, printed in "250 2.0.0 Ok: queued as <queue_id>".
    queue_id = models.CharField(max_length=32, unique=True)
    created = models.DateTimeField(default=timezone.now)
    envelope_from = models.CharField(max_length=320)
    header_from = models.CharField(max_length=998, blank=True)
    # Decoded (RFC 2047) subject, for display; always HTML-escaped when shown.
    subject = models.CharField(max_length=998, blank=True)
    message_id = models.CharField(max_length=998, blank=True)
    size = models.PositiveIntegerField(default=0)
    client_ip = models.GenericIPAddressField(null=True, blank=True)
    client_helo = models.CharField(max_length=255, blank=True)
    port = models.PositiveIntegerField(null=True, blank=True)
    smtputf8 = models.BooleanField(default=False)
    # Exactly as received, plus our Received: header. Emptied by retention pruning.
    raw = models.BinaryField(null=True, blank=True)
    pruned = models.BooleanField(default=False)
    # RFC 3461 (the DSN extension): RET= ("FULL"/"HDRS", blank if not given) and ENVID=
    # (xtext-decoded) of MAIL FROM. `dsn_of`: this message is a delivery status
    # notification SMTP+ wrote about that one (sent with the null sender).
    dsn_ret = models.CharField(max_length=4, blank=True)
    dsn_envid = models.CharField(max_length=100, blank=True)
    dsn_of = models.ForeignKey(
        "self", models.SET_NULL, null=True, blank=True, related_name="dsns"
    )

    class Meta:
        ordering = ["-created", "-id"]
        indexes = [
            models.Index(fields=["account", "-created"], name="msg_account_created"),
            models.Index(fields=["smtp_user", "-created"], name="msg_user_created"),
            models.Index(fields=["created"], name="msg_created"),
        ]

    def __str__(self) -> str:
        return self.queue_id


class RecipientStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    DEFERRED = "deferred", "Deferred"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class FailReason(models.TextChoices):
    """Why an attempt did not deliver, or why a recipient stopped: set by the transport
    or the delivery step that knows it, read by `relay.explain`. The upstream's own reply
    (code, enhanced code, text) is kept beside it, as received."""

    # The upstream answered.
    REJECTED = "rejected", "Refused by the upstream server"
    TEMPORARY = "temporary", "Temporary refusal by the upstream server"
    SESSION_REFUSED = "session_refused", "Upstream refused the session (greeting, TLS or login)"
    # The upstream could not be reached, or not for long enough.
    CONNECT_FAILED = "connect_failed", "Could not connect to the upstream server"
    CONNECTION_LOST = "connection_lost", "Connection to the upstream server lost"
    TIMEOUT = "timeout", "Upstream server did not answer in time"
    TLS_FAILED = "tls_failed", "Encryption with the upstream server failed"
    # DNS (the mx upstream).
    DNS_FAILED = "dns_failed", "DNS lookup failed"
    NO_ADDRESS = "no_address", "Mail servers of the domain have no address"
    NULL_MX = "null_mx", "Domain accepts no mail (null MX)"
    NO_SUCH_DOMAIN = "no_such_domain", "Domain does not exist"
    # SMTP+ itself.
    SMTPUTF8 = "smtputf8", "Address needs SMTPUTF8, the upstream lacks it"
    UNDELIVERABLE = "undeliverable", "Message body no longer stored"
    WRITE_FAILED = "write_failed", "Could not write to the Maildir"
    INTERNAL_ERROR = "internal_error", "Internal error in SMTP+"
    # The recipient's end, decided by SMTP+ or an admin.
    EXPIRED = "expired", "Expired after retrying"
    CANCELLED = "cancelled", "Cancelled by an admin"


# Reasons a retry cannot cure, when no upstream reply says so: the recipient fails at once.
PERMANENT_REASONS = frozenset({
    FailReason.REJECTED, FailReason.NULL_MX, FailReason.NO_SUCH_DOMAIN, FailReason.SMTPUTF8,
    FailReason.UNDELIVERABLE,
})


PENDING_STATUSES = (RecipientStatus.QUEUED, RecipientStatus.DEFERRED)
FINAL_STATUSES = (RecipientStatus.DELIVERED, RecipientStatus.FAILED, RecipientStatus.CANCELLED)


class Recipient(models.Model):
    """One RCPT of a message: the unit of delivery, retries and alerts."""

    message = models.ForeignKey(Message, models.CASCADE, related_name="recipients")
    # Denormalised from the message so the queue and the log need no join to filter.
    # Indexed by the composite indexes below (they lead with these columns).
    account = models.ForeignKey(Account, models.CASCADE, related_name="+", db_index=False)
    smtp_user = models.ForeignKey(
        SmtpUser, models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    address = models.CharField(max_length=320)
    status = models.CharField(
        max_length=10, choices=RecipientStatus.choices, default=RecipientStatus.QUEUED
    )
    # Copied from the SMTP+ user at accept time: 1 is delivered first.
    priority = models.PositiveSmallIntegerField(default=3)
    created = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    # Set when the recipient reaches a final status.
    finished_at = models.DateTimeField(null=True, blank=True)
    last_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_enhanced = models.CharField(max_length=16, blank=True)
    last_text = models.TextField(blank=True)
    # Why the last attempt did not deliver (blank after a delivery or before any attempt).
    last_reason = models.CharField(max_length=32, choices=FailReason.choices, blank=True)
    # Why a failed or cancelled recipient stopped: the last attempt's reason, or
    # "expired" (past DELIVERY_LIFETIME) or "cancelled" (by an admin).
    fail_reason = models.CharField(max_length=32, choices=FailReason.choices, blank=True)
    # A worker owns the row while lease_until is in the future.
    lease_owner = models.CharField(max_length=64, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    # RFC 3461 NOTIFY= of RCPT TO ("" not given, "NEVER", or e.g. "FAILURE,DELAY") and
    # ORCPT= ("rfc822;addr", xtext-decoded); a DSN owed for the state just reached
    # (`relay.delivery.notices`: failed, delayed or delivered; blank when none is),
    # cleared once the report is written.
    notify = models.CharField(max_length=32, blank=True)
    orcpt = models.CharField(max_length=500, blank=True)
    dsn_due = models.CharField(max_length=10, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            # The workers' claim query: due pending rows by priority, then due time.
            models.Index(
                fields=["priority", "next_attempt_at"],
                name="rcpt_queue_due",
                condition=models.Q(status__in=["queued", "deferred"]),
            ),
            models.Index(fields=["account", "status", "-created"], name="rcpt_account_status"),
            models.Index(fields=["smtp_user", "status", "-created"], name="rcpt_user_status"),
            models.Index(fields=["status", "finished_at"], name="rcpt_status_finished"),
            # The log's recipient domain filter, alone or with a period (the recipients
            # of a domain accepted in it: `created` is the message's); the state and when
            # it was reached are read from it too, for a domain's deliveries or failures.
            models.Index(F("account"), recipient_domain(), F("created"), F("status"),
                         F("finished_at"), name="rcpt_account_domain"),
            models.Index(fields=["dsn_due"], name="rcpt_dsn_due", condition=~models.Q(dsn_due="")),
        ]

    def __str__(self) -> str:
        return f"{self.address} ({self.status})"


class Attempt(models.Model):
    """One delivery try for one recipient, with the upstream's reply."""

    recipient = models.ForeignKey(Recipient, models.CASCADE, related_name="attempt_set")
    started = models.DateTimeField(default=timezone.now)
    duration_ms = models.PositiveIntegerField(default=0)
    upstream = models.CharField(max_length=255, blank=True)
    code = models.PositiveSmallIntegerField(null=True, blank=True)
    enhanced = models.CharField(max_length=16, blank=True)
    text = models.TextField(blank=True)
    # delivered / deferred / failed
    outcome = models.CharField(max_length=10)
    # Why this try did not deliver (blank when it did).
    reason = models.CharField(max_length=32, choices=FailReason.choices, blank=True)

    class Meta:
        ordering = ["started", "id"]
        indexes = [
            # The statistics' deferrals per hour (relay/rollup.py); only deferred tries
            # are in it, so a delivery costs no extra index write.
            models.Index(fields=["started"], name="attempt_deferred_started",
                         condition=models.Q(outcome="deferred")),
        ]


class DsnRecord(models.Model):
    """One recipient's line in a delivery status notification SMTP+ sent (`dsn`), or
    why none was sent for that state (`note`: off for the user, rate limit, NOTIFY)."""

    recipient = models.ForeignKey(Recipient, models.CASCADE, related_name="dsn_records")
    dsn = models.ForeignKey(
        Message, models.SET_NULL, null=True, blank=True, related_name="dsn_lines"
    )
    action = models.CharField(max_length=10)  # failed / delayed / delivered / relayed
    created = models.DateTimeField(default=timezone.now)
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["created", "id"]


class SuppressionReason(models.TextChoices):
    MAILBOX_UNKNOWN = "mailbox_unknown", "Mailbox does not exist"
    MAILBOX_DISABLED = "mailbox_disabled", "Mailbox disabled"
    DOMAIN_UNKNOWN = "domain_unknown", "Domain does not exist or accepts no mail"
    MANUAL = "manual", "Added by an admin"
    IMPORTED = "imported", "Imported"


class Suppression(models.Model):
    """An address an account's mail is no longer sent to: refused at RCPT TO.

    Added when a delivery fails permanently for a mailbox-level reason (never for a
    policy or reputation refusal), or by an admin; `expires` (optional) ends it.
    """

    account = models.ForeignKey(Account, models.CASCADE, related_name="suppressions",
                                db_index=False)
    address = models.CharField(max_length=320)  # lower case
    reason = models.CharField(max_length=20, choices=SuppressionReason.choices)
    reply = models.CharField(max_length=500, blank=True)  # the upstream reply that caused it
    message = models.ForeignKey(Message, models.SET_NULL, null=True, blank=True,
                                related_name="+")
    note = models.CharField(max_length=200, blank=True)
    created = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["account", "address"], name="suppression_unique"),
        ]

    def __str__(self) -> str:
        return self.address


class SuppressionListVersion(models.Model):
    """Bumped in the transaction of every change to an account's suppression list
    (`relay.suppressions`), so that a relay process can keep its answers for the list
    and know when they are out of date (`relay.smtp.suppression_cache`). No row: the
    list never changed (version 0)."""

    account = models.OneToOneField(Account, models.CASCADE, primary_key=True,
                                   related_name="+")
    version = models.PositiveBigIntegerField(default=0)


class DsnMode(models.TextChoices):
    SENDER = "sender", "To the envelope sender"
    ADDRESS = "address", "To another address"
    OFF = "off", "Not at all"


class DsnSettings(models.Model):
    """Where an SMTP+ user's delivery status notifications go (no row: to the sender)."""

    smtp_user = models.OneToOneField(SmtpUser, models.CASCADE, related_name="dsn_settings")
    mode = models.CharField(max_length=10, choices=DsnMode.choices, default=DsnMode.SENDER)
    address = models.CharField(max_length=320, blank=True)


class HourlyStat(models.Model):
    """One hour's counters for one account and SMTP+ user, folded by `relay.rollup`.

    Messages and recipients are counted apart: `accepted` is messages accepted in the
    hour, `recipients` their recipients; `delivered` and `failed` are recipients that
    reached that status in the hour, `deferred` delivery tries that ended deferred in
    it, `rejected` the relay events (refusals, failed logins) last seen in it.
    """

    hour = models.DateTimeField()
    account = models.ForeignKey(Account, models.CASCADE, related_name="+", db_index=False)
    # NULL: events without a known user, and the rows of a deleted SMTP+ user.
    smtp_user = models.ForeignKey(
        SmtpUser, models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    accepted = models.PositiveIntegerField(default=0)
    recipients = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    rejected = models.PositiveIntegerField(default=0)

    class Meta:
        indexes = [
            models.Index(fields=["account", "hour"], name="hourstat_account_hour"),
            models.Index(fields=["smtp_user", "hour"], name="hourstat_user_hour"),
            models.Index(fields=["hour"], name="hourstat_hour"),
        ]


class DomainCounters(models.Model):
    """The recipient counters of one account and recipient domain over a period."""

    account = models.ForeignKey(Account, models.CASCADE, related_name="+", db_index=False)
    domain = models.CharField(max_length=255)
    recipients = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class DomainHourlyStat(DomainCounters):
    """One hour's recipient counters for one account and recipient domain (the
    dashboard's top domains), folded by `relay.rollup` with `HourlyStat`."""

    hour = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["account", "hour"], name="domainstat_account_hour"),
            models.Index(fields=["hour"], name="domainstat_hour"),
        ]


class DomainDailyStat(DomainCounters):
    """The `DomainHourlyStat` rows of one UTC day added up (the hours of it folded so
    far), kept in step by `relay.rollup`: a 30-day top list reads 30 rows per domain
    rather than 720."""

    day = models.DateTimeField()  # 00:00 UTC

    class Meta:
        indexes = [
            models.Index(fields=["account", "day"], name="domainday_account_day"),
            models.Index(fields=["day"], name="domainday_day"),
        ]


class RollupState(models.Model):
    """How far `relay.rollup` has folded: every hour before `folded_until` is in the
    hourly tables; later hours are read live from the messages, recipients, attempts
    and events."""

    name = models.CharField(max_length=32, unique=True)
    folded_until = models.DateTimeField()
    updated = models.DateTimeField(default=timezone.now)
