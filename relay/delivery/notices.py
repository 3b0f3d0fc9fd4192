"""Delivery status notifications owed to senders, written into the queue; and the
suppression list's automatic entries.

When a recipient reaches a state a sender hears of — failed (refused, or expired), or
delivered when its client asked NOTIFY=SUCCESS — the delivery step marks it
(`Recipient.dsn_due`) in the same write as its new state, so a crash cannot lose the
notice. `write_due()` then turns the marked recipients of each message into ONE report
(RFC 3464, `relay.delivery.dsn`) stored as a new message from the null sender, queued
for the upstream like any other: it survives an upstream outage and is retried. Each
reported recipient gets a `DsnRecord` linking it to the report — or saying why there is
none (NOTIFY, the SMTP+ user's setting, the per-sender rate limit).

Never a report about a message from the null sender (a DSN, or any bounce). A failure
for a mailbox-level reason adds the address to the account's suppression list.
Delay warnings (`DSN_DELAY_WARNING_HOURS`, off by default) mark deferred recipients that
have waited that long and have no warning yet.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from relay import suppressions
from relay.delivery import dsn
from relay.delivery.queue import Claimed
from relay.dsn_params import DsnRequest, wants
from relay.models import DsnMode, DsnRecord, DsnSettings, Message, Recipient, RecipientStatus

log = logging.getLogger(__name__)

DUE_FAILED = "failed"
DUE_DELIVERED = "delivered"
DUE_DELAYED = "delayed"
_WORD = {DUE_FAILED: "FAILURE", DUE_DELAYED: "DELAY", DUE_DELIVERED: "SUCCESS"}
BATCH = 500
_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXZ"


# --- marks, set by the delivery step ---------------------------------------------------
def due_on_delivery(notify: str, dsn_passed: bool) -> str:
    """The mark of a delivered recipient: a success report only if the client asked for
    one and the upstream did not take the request over (it reports itself then)."""
    return DUE_DELIVERED if "SUCCESS" in notify.split(",") and not dsn_passed else ""


def may_be_due(outcome: str, notify: str, dsn_passed: bool, message_created: datetime) -> bool:
    """Whether an outcome may have marked its recipient (so reports are worth writing
    now rather than at the next sweep)."""
    if outcome == "failed":
        return True
    if outcome == "delivered":
        return bool(due_on_delivery(notify, dsn_passed))
    return timezone.now() >= message_created + timedelta(seconds=settings.DELIVERY_LIFETIME)


def request_of(ret: str, envid: str, rcpts: list[Claimed]) -> DsnRequest | None:
    """The DSN request to pass to the next server, if the client made one."""
    request = DsnRequest(ret, envid, {r.address: (r.notify, r.orcpt) for r in rcpts
                                      if r.notify or r.orcpt})
    return request or None


# --- writing the reports -----------------------------------------------------------------
def sweep(now: datetime | None = None) -> int:
    """Mark the delay warnings now owed, then write every report owed; the number of
    reports queued."""
    mark_delayed(now)
    return write_due()


def mark_delayed(now: datetime | None = None) -> int:
    """Mark deferred recipients that waited DSN_DELAY_WARNING_HOURS and have had no
    warning (NOTIFY, if given, must include DELAY). Off when the setting is 0."""
    hours = float(settings.DSN_DELAY_WARNING_HOURS)
    if hours <= 0:
        return 0
    cutoff = (now or timezone.now()) - timedelta(hours=hours)
    ids = list(
        Recipient.objects.filter(status=RecipientStatus.DEFERRED, created__lte=cutoff, dsn_due="")
        .exclude(message__envelope_from="")
        .exclude(~Q(notify="") & ~Q(notify__contains="DELAY"))
        .exclude(dsn_records__action=DUE_DELAYED)
        .values_list("pk", flat=True)[:BATCH]
    )
    return Recipient.objects.filter(
        pk__in=ids, status=RecipientStatus.DEFERRED, dsn_due="").update(dsn_due=DUE_DELAYED)


def write_due(message_ids: list[int] | None = None) -> int:
    """Write one report per message and mark for the recipients marked; the number of
    reports queued. Safe to run from several workers at once."""
    marked = Recipient.objects.filter(~Q(dsn_due=""))
    if message_ids is not None:
        marked = marked.filter(message_id__in=message_ids)
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for pk, message_id, due in marked.values_list("pk", "message_id", "dsn_due")[:BATCH]:
        groups[(message_id, due)].append(pk)
    written = 0
    for (_, due), pks in groups.items():
        with transaction.atomic():
            rows = _take(pks, due)
            if rows:
                written += _report(rows, due)
    return written


def _take(pks: list[int], due: str) -> list[Recipient]:
    """Lock and unmark the rows still marked `due` (another worker may have taken them)."""
    rows = Recipient.objects.filter(pk__in=pks, dsn_due=due)
    if connection.features.has_select_for_update_skip_locked:
        rows = rows.select_for_update(skip_locked=True, of=("self",))
    taken = list(rows.select_related("message", "smtp_user"))
    Recipient.objects.filter(pk__in=[r.pk for r in taken]).update(dsn_due="")
    return taken


def _report(rows: list[Recipient], due: str) -> int:
    message = rows[0].message
    if due == DUE_FAILED:
        for r in rows:
            _suppress_if_mailbox_level(r)
    if message.envelope_from == "":
        return 0  # never a report about a report (or any message from the null sender)
    word = _WORD[due]
    asked = [r for r in rows if wants(r.notify, word)]
    records = [DsnRecord(recipient=r, action=due, note=f"the client asked NOTIFY={r.notify}")
               for r in rows if r not in asked]
    if due == DUE_FAILED and asked:
        # A recipient that an admin retried after its failure was reported and that
        # failed again: the sender already has the failure report for it, and a second
        # one would read as a second message lost. One failure report per recipient.
        reported = _failure_reported(asked)
        records += [DsnRecord(recipient=r, action=due, note=f"already reported as failed in "
                              f"the report of {reported[r.pk]:%Y-%m-%d %H:%M} UTC (it was "
                              "retried since and failed again)")
                    for r in asked if r.pk in reported]
        asked = [r for r in asked if r.pk not in reported]
    target: str | None = None
    if asked:
        target, why_not = _target(message)
        if target is not None and suppressions.active(message.account_id, target) is not None:
            target, why_not = None, f"{target} is on the account's suppression list"
        if target is None:
            records += [DsnRecord(recipient=r, action=due, note=why_not) for r in asked]
            asked = []
        elif _over_rate(message):
            note = f"rate limit: {settings.DSN_RATE_LIMIT} reports an hour to this sender"
            records += [DsnRecord(recipient=r, action=due, note=note) for r in asked]
            asked = []
    report = _queue_report(message, asked, due, target) if asked and target else None
    records += [DsnRecord(recipient=r, action=due, dsn=report) for r in asked]
    DsnRecord.objects.bulk_create(records)
    return 1 if report is not None else 0


def _failure_reported(rows: list[Recipient]) -> dict[int, datetime]:
    """Recipient id -> when a failure report listing it was sent, for those of `rows`
    that had one."""
    sent = (DsnRecord.objects.filter(recipient__in=rows, action=DUE_FAILED, dsn__isnull=False)
            .values_list("recipient_id", "created").order_by("-created"))
    return {pk: created for pk, created in sent}


def _suppress_if_mailbox_level(r: Recipient) -> None:
    reason = suppressions.mailbox_level(r.last_code, r.last_enhanced, r.last_text,
                                        r.last_reason or r.fail_reason)
    if reason is None:
        return
    reply = " ".join(str(p) for p in (r.last_code, r.last_enhanced, r.last_text) if p)
    if suppressions.suppress_failed(r.account_id, r.address, reason, reply, r.message_id):
        log.info("suppressed %s for account %s: %s", r.address, r.account_id, reply)


def _target(message: Message) -> tuple[str | None, str]:
    """Where the SMTP+ user's reports go, or None and why not."""
    choice = DsnSettings.objects.filter(smtp_user_id=message.smtp_user_id).first()
    if choice is None or choice.mode == DsnMode.SENDER:
        return message.envelope_from, ""
    if choice.mode == DsnMode.ADDRESS and choice.address:
        return choice.address, ""
    return None, "delivery status notifications are off for this SMTP+ user"


def _over_rate(message: Message) -> bool:
    limit = settings.DSN_RATE_LIMIT
    if limit <= 0:
        return False
    since = timezone.now() - timedelta(hours=1)
    sent = Message.objects.filter(
        account_id=message.account_id, envelope_from="", created__gte=since,
        dsn_of__envelope_from=message.envelope_from,
    ).count()
    return sent >= limit


def _line(r: Recipient, due: str) -> dsn.Line:
    last = r.attempt_set.order_by("-started", "-id").first()
    action = due
    if due == DUE_DELIVERED and last is not None and not last.upstream.startswith("maildir"):
        action = "relayed"  # handed to a server that does not report (RFC 3464 2.3.3)
    return dsn.Line(
        address=r.address, action=action, orcpt=r.orcpt, code=r.last_code,
        enhanced=r.last_enhanced, text=r.last_text, fail_reason=r.fail_reason,
        last_reason=r.last_reason, remote_mta=last.upstream if last else "",
        last_attempt=last.started if last else None,
    )


def _queue_id() -> str:
    """A queue id of the same shape the relay gives (time-ordered, 16 characters)."""
    stamp, tail = int(time.time() * 1000), secrets.randbelow(len(_ALPHABET) ** 9)
    chars = []
    for value, count in ((tail, 9), (stamp, 7)):
        for _ in range(count):
            value, rem = divmod(value, len(_ALPHABET))
            chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _queue_report(message: Message, rows: list[Recipient], due: str, target: str) -> Message:
    now = timezone.now()
    raw = bytes(message.raw) if message.raw is not None else None
    original = dsn.Original(message.queue_id, message.envelope_from, message.created, raw,
                            message.dsn_ret, message.dsn_envid)
    lines = [_line(r, due) for r in rows]
    body, subject, message_id = dsn.build(
        original, lines, to=target, from_=settings.DSN_FROM,
        hostname=settings.RELAY_HOSTNAME, date=now)
    report = Message.objects.create(
        account_id=message.account_id, smtp_user_id=message.smtp_user_id,
        queue_id=_queue_id(), created=now, envelope_from="", header_from=settings.DSN_FROM,
        subject=subject, message_id=message_id, size=len(body), raw=body, dsn_of=message,
    )
    Recipient.objects.create(
        message=report, account_id=message.account_id, smtp_user_id=message.smtp_user_id,
        address=target, priority=rows[0].priority, created=now, next_attempt_at=now,
    )
    return report
