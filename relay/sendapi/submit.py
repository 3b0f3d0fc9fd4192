"""Judging and queueing one message of the send API with the relay's own rules.

`judge()` asks the relay's pure checks (`relay.smtp.checks`) in the order an SMTP session
meets them — MAIL FROM (address, hourly limit, sender authorization), each RCPT TO
(address, recipient limit, the account's suppression list, read once for all of them), then DATA (size, line length, the From:/Sender: headers) — so
a message gets the same decision, the same reply text and the same relay event whichever
way it comes. `store()` writes it with the relay's own storage code (the same Message and
Recipient rows, in one transaction: on PostgreSQL the relay's one statement) and gives its
queue id only once that transaction has committed: an error on the way is a 5xx, never a
202.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

from django.db import connection, transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone

from accounts.tenancy import client_ip
from relay import suppressions
from relay.models import EventKind, Suppression
from relay.sendapi.auth import Sender
from relay.sendapi.events import record_event
from relay.smtp import checks, replies, store_pg
from relay.smtp.accept import HeaderSummary, Submission, printable, store_messages_with_ids
from relay.smtp.checks import Reject, SessionSnapshot
from relay.smtp.config import RelayConfig
from relay.smtp.limits import messages_last_hour

_LINES = re.compile(rb"\r\n|\r|\n")
# aiosmtpd's limit on a line of DATA as it travels, CRLF included (the relay's limit).
LINE_LIMIT = 1001


@dataclass(frozen=True)
class Envelope:
    sender: str
    recipients: list[str]
    raw: bytes
    smtputf8: bool


@dataclass(frozen=True)
class Queued:
    id: int
    queue_id: str
    message_id: str
    recipients: int


def crlf(raw: bytes) -> bytes:
    """Line ends as SMTP carries them (CRLF), whatever the caller sent."""
    return _LINES.sub(b"\r\n", raw)


def _too_long_line(raw: bytes) -> bool:
    # As the message travels in DATA: CRLF added, and a leading dot doubled.
    return any(len(line) + 2 + line.startswith(b".") > LINE_LIMIT
               for line in raw.split(b"\r\n"))


def suppressions_of(account_id: int, addresses: list[str]) -> Callable[[str], str | None]:
    """The relay's RCPT TO refusal of each of `addresses` that is on the account's
    suppression list (None for the others), the list read in one query for all of them:
    the relay's lookup (unexpired entries, addresses as `suppressions.normalise` writes
    them), for every recipient of the request at once."""
    keys = {address: suppressions.normalise(address) for address in addresses}
    wanted = {key for key in keys.values() if key is not None}
    entries: dict[str, Suppression] = {}
    if wanted:
        rows = (Suppression.objects.filter(account_id=account_id, address__in=wanted)
                .filter(Q(expires__isnull=True) | Q(expires__gt=timezone.now()))
                .only("address", "created", "reason", "reply"))
        entries = {entry.address: entry for entry in rows}

    def refusal(address: str) -> str | None:
        entry = entries.get(keys.get(address) or "")
        return suppressions.refusal_reply(entry, address) if entry is not None else None
    return refusal


def judge(sender: Sender, envelope: Envelope, config: RelayConfig,
          hourly_count: Callable[[int], int] = messages_last_hour,
          ) -> Reject | HeaderSummary:
    """The relay's decision on the message, command by command."""
    user = sender.user
    session = SessionSnapshot(authenticated=True, username=user.username, policy=sender.policy,
                              hourly_limit=user.hourly_limit, smtputf8=envelope.smtputf8)
    if not envelope.sender:  # what the relay answers to MAIL FROM:<>
        return Reject(replies.NULL_SENDER, EventKind.SENDER_REJECTED, "null sender")
    reject = checks.mail_from(session, envelope.sender, envelope.smtputf8)
    if reject is None and user.hourly_limit and hourly_count(user.pk) >= user.hourly_limit:
        reject = checks.over_hourly_limit(session, envelope.sender)
    if reject is None:
        reject = checks.envelope_sender(session, envelope.sender)
    if reject is not None:
        return reject
    session = replace(session, mail_from=envelope.sender)
    suppressed = suppressions_of(user.account_id, envelope.recipients)
    for count, address in enumerate(envelope.recipients):
        reject = checks.recipient(replace(session, recipients=count), address,
                                  config.max_recipients)
        if reject is None:
            refusal = suppressed(address)  # as the relay's RCPT hook
            if refusal is not None:
                reject = Reject(refusal, EventKind.SUPPRESSED, "on the suppression list",
                                printable(address))
        if reject is not None:
            return reject
    if config.max_message_size and len(envelope.raw) > config.max_message_size:
        # What the relay records when aiosmtpd refuses a message over the limit.
        return Reject(replies.SIZE_EXCEEDED, EventKind.SIZE_EXCEEDED,
                      "over RELAY_MAX_MESSAGE_SIZE", envelope.sender)
    if _too_long_line(envelope.raw):
        return Reject(replies.LINE_TOO_LONG, EventKind.BAD_MESSAGE,
                      "a line of the message is over 998 characters (RFC 5322 2.1.1)",
                      envelope.sender)
    session = replace(session, recipients=len(envelope.recipients))
    return checks.message(session, envelope.raw)


def refuse(request: HttpRequest, sender: Sender, reject: Reject) -> None:
    """Record the relay event of a refusal, as the relay's handler does."""
    user = sender.user
    record_event(request, reject.kind, reject.reply, username=user.username,
                 address=reject.address, reason=reject.reason, account_id=user.account_id,
                 smtp_user_id=user.pk)


def store(request: HttpRequest, sender: Sender, envelope: Envelope, headers: HeaderSummary,
          config: RelayConfig, also: Callable[[Queued], None] | None = None) -> Queued:
    """Queue the message in one transaction (with `also`, e.g. the idempotency record);
    returns after the commit. Raises what the database raises."""
    user = sender.user
    submission = Submission(
        account_id=user.account_id, smtp_user_id=user.pk, username=user.username,
        priority=user.priority, envelope_from=envelope.sender,
        recipients=list(envelope.recipients), raw=envelope.raw,
        client_ip=client_ip(request), smtputf8=envelope.smtputf8, tls=request.is_secure(),
        headers=headers, protocol="HTTPS" if request.is_secure() else "HTTP",
    )
    if also is None:  # one transaction of its own
        queue_id, pk = _store_one(submission, config.hostname)
        return Queued(pk, queue_id, headers.message_id, len(envelope.recipients))
    with transaction.atomic():
        queue_id, pk = _store_one(submission, config.hostname)
        queued = Queued(pk, queue_id, headers.message_id, len(envelope.recipients))
        also(queued)
    return queued


def _store_one(submission: Submission, hostname: str) -> tuple[str, int]:
    """(queue id, Message id) of the stored message. On PostgreSQL the relay's one
    statement (its own transaction in autocommit: no BEGIN/COMMIT round trips), elsewhere
    the relay's ORM path."""
    if connection.vendor == "postgresql":
        return store_pg.store_message_now(submission, hostname)
    [stored] = store_messages_with_ids([submission], hostname)
    return stored
