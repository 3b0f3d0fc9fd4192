"""The suppression list: addresses an account's mail is no longer sent to.

An address is added on its own when a delivery fails permanently for a *mailbox-level*
reason — the mailbox or its domain does not exist, or the mailbox is disabled — and
never for a policy or reputation refusal (5.7.x, "blocked", "spam", "low reputation"),
which says nothing about the address: suppressing on those would lock an account out of
good addresses during an IP warm-up or a block-list incident. Admins add, remove, import
and export entries (console, `manage.py suppression`, the API; the CSV side is
`relay.suppression_csv`); each change is audited.

The relay refuses a recipient on the list at RCPT TO (`refusal_reply`), so a client
learns at once, and the entry tells the admin why and since when.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts import audit
from accounts.audit import Actor
from accounts.models import Account
from accounts.senders import split_address
from relay.models import FailReason, Suppression, SuppressionReason

# Enhanced status codes (RFC 3463) that say the address itself cannot receive mail.
_MAILBOX_CODES: dict[str, SuppressionReason] = {
    "5.1.1": SuppressionReason.MAILBOX_UNKNOWN,  # bad destination mailbox address
    "5.1.2": SuppressionReason.DOMAIN_UNKNOWN,  # bad destination system address
    "5.1.3": SuppressionReason.MAILBOX_UNKNOWN,  # bad destination mailbox address syntax
    "5.1.6": SuppressionReason.MAILBOX_UNKNOWN,  # mailbox has moved, no forwarding address
    "5.1.10": SuppressionReason.DOMAIN_UNKNOWN,  # null MX (RFC 7505)
    "5.2.1": SuppressionReason.MAILBOX_DISABLED,  # mailbox disabled
}
# SMTP+'s own permanent findings about the domain (DNS).
_MAILBOX_REASONS: dict[str, SuppressionReason] = {
    FailReason.NULL_MX: SuppressionReason.DOMAIN_UNKNOWN,
    FailReason.NO_SUCH_DOMAIN: SuppressionReason.DOMAIN_UNKNOWN,
}
# A reply without an enhanced code is read by its text, and only when it says nothing
# of policy: "550 mailbox unavailable: your IP is blocked" is not a dead mailbox.
_UNKNOWN_USER_TEXT = re.compile(
    r"user unknown|unknown user|no such (user|mailbox|recipient)|mailbox (not found|does "
    r"not exist)|recipient (address )?rejected: user unknown|does not exist|invalid recipient",
    re.IGNORECASE,
)
_POLICY_TEXT = re.compile(
    r"spam|block|black ?list|policy|reputation|dmarc|spf|dkim|rbl|spamhaus|rate|denied|"
    r"not permitted|relay",
    re.IGNORECASE,
)


def normalise(address: str) -> str | None:
    """The form the list stores: lower case, the domain as its A-label; None if the text
    is not an address."""
    parts = split_address(address)
    if parts is None:
        return None
    local, domain = parts
    return f"{local.lower()}@{domain}"


def mailbox_level(code: int | None, enhanced: str, text: str, reason: str) -> SuppressionReason | None:
    """Why a permanent failure makes the address worth suppressing, or None if it says
    nothing about the address (policy, reputation, size, SMTP+'s own trouble)."""
    if reason in _MAILBOX_REASONS:
        return _MAILBOX_REASONS[reason]
    if code is None or not 500 <= code < 600:
        return None
    if enhanced:
        return _MAILBOX_CODES.get(enhanced.strip())
    if code in (550, 551, 553) and _UNKNOWN_USER_TEXT.search(text) and not _POLICY_TEXT.search(text):
        return SuppressionReason.MAILBOX_UNKNOWN
    return None


def active(account_id: int, address: str, now: datetime | None = None) -> Suppression | None:
    """The account's unexpired entry for `address`, if any (the relay's RCPT check)."""
    key = normalise(address)
    if key is None:
        return None
    now = now or timezone.now()
    return (
        Suppression.objects.filter(account_id=account_id, address=key)
        .filter(Q(expires__isnull=True) | Q(expires__gt=now))
        .first()
    )


def refusal_reply(entry: Suppression, address: str) -> str:
    """The RCPT TO refusal: that the address is suppressed, since when, why, and how to
    lift it. One line, ASCII-safe, within RFC 5321's reply length."""
    why = entry.get_reason_display().lower()
    if entry.reply:
        why += ": " + " ".join(entry.reply.split())[:160]
    safe = address.encode("ascii", "replace").decode()[:200]
    return (
        f"550 5.1.1 <{safe}>: recipient is on this account's suppression list since "
        f"{entry.created:%Y-%m-%d} ({why}); remove it in the console if the address works "
        "again"
    )


def refusal_for(account_id: int, address: str) -> str | None:
    """The RCPT TO refusal for `address` if the account has suppressed it, else None."""
    query = lookup_query(account_id, address)
    if query is None:
        return None
    with connection.cursor() as cursor:
        cursor.execute(*query)
        return refusal_from_row(cursor.fetchone(), address)


def lookup_query(account_id: int, address: str) -> tuple[str, list[Any]] | None:
    """The relay's per-RCPT query (one unique-index lookup), for any connection to the
    database; None when `address` is no address (nothing to look up)."""
    key = normalise(address)
    if key is None:
        return None
    q = connection.ops.quote_name
    opts = Suppression._meta
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    # Quoted names from the model only; every value is a parameter.
    sql = (
        f"SELECT {q('created')}, {q('reason')}, {q('reply')} FROM {q(opts.db_table)} "  # noqa: S608
        f"WHERE {q('account_id')} = %s AND {q('address')} = %s "
        f"AND ({q('expires')} IS NULL OR {q('expires')} > %s)"
    )
    return sql, [account_id, key, now]


def refusal_from_row(row: Sequence[object] | None, address: str) -> str | None:
    if row is None:
        return None
    created, reason, reply = row
    if isinstance(created, str):  # SQLite
        created = parse_datetime(created)
    assert isinstance(created, datetime)
    return refusal_reply(Suppression(created=created, reason=str(reason), reply=str(reply)), address)


def suppress_failed(
    account_id: int, address: str, reason: SuppressionReason, reply: str, message_id: int | None
) -> bool:
    """Add an automatic entry after a mailbox-level failure (kept as it is if the address
    is already listed). True if one was added."""
    key = normalise(address)
    if key is None:
        return False
    try:
        with transaction.atomic():
            _, created = Suppression.objects.get_or_create(
                account_id=account_id, address=key,
                defaults={"reason": reason, "reply": reply[:500], "message_id": message_id},
            )
    except IntegrityError:  # another worker added it at the same moment
        return False
    return created


# --- admin changes (audited) ----------------------------------------------------------
class InvalidSuppression(ValueError):
    """An entry that cannot be added: the message names the entry and why."""


MAX_EXPIRY_DAYS = 36_500  # a hundred years: further is no expiry at all


def search(account: Account, text: str = "", reason: str = "") -> QuerySet[Suppression]:
    """The account's entries, newest first, whose address contains `text` and whose reason
    is `reason` (an unknown reason filters nothing): the console's, the CLI's and the
    API's lists."""
    entries = Suppression.objects.filter(account=account).select_related("message")
    if text.strip():
        entries = entries.filter(address__icontains=text.strip())
    if reason in SuppressionReason.values:
        entries = entries.filter(reason=reason)
    return entries.order_by("-created", "-id")


def expires_after(days: str | int | None, now: datetime | None = None) -> datetime | None:
    """The expiry of an entry added for `days` days (None or "": it does not expire)."""
    if days is None or days == "":
        return None
    text = str(days).strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_EXPIRY_DAYS:
        raise InvalidSuppression(
            f"Expiry {text!r}: give a number of days from 1 to {MAX_EXPIRY_DAYS}, or nothing.")
    return (now or timezone.now()) + timedelta(days=int(text))


def add(
    account: Account, address: str, actor: Actor, *, note: str = "",
    expires: datetime | None = None, reason: SuppressionReason = SuppressionReason.MANUAL,
) -> Suppression:
    """Add (or renew) one entry by hand; audited."""
    key = normalise(address)
    if key is None:
        raise InvalidSuppression(f"{address!r} is not an email address (name@domain)")
    with transaction.atomic():
        entry, _ = Suppression.objects.update_or_create(
            account=account, address=key,
            defaults={"reason": reason, "note": note[:200], "expires": expires,
                      "created": timezone.now(), "reply": "", "message": None},
        )
        audit.record("suppression.added", account=account, actor=actor, target=entry,
                     details={"address": key, "reason": str(reason), "note": note[:200],
                              "expires": expires.isoformat() if expires else None})
    return entry


def remove(account: Account, addresses: Iterable[str], actor: Actor) -> list[str]:
    """Remove entries of `account` by address; audited. Returns the addresses removed."""
    keys = {normalise(a) or a.strip().lower() for a in addresses}
    with transaction.atomic():
        found = Suppression.objects.filter(account=account, address__in=keys)
        removed = sorted(found.values_list("address", flat=True))
        found.delete()
        if removed:
            audit.record("suppression.removed", account=account, actor=actor,
                         target_label=", ".join(removed)[:300], details={"addresses": removed})
    return removed


def entry_json(e: Suppression) -> dict[str, object]:
    return {
        "address": e.address,
        "reason": e.reason,
        "reply": e.reply,
        "note": e.note,
        "message": e.message.queue_id if e.message_id and e.message else None,
        "created": e.created.isoformat(),
        "expires": e.expires.isoformat() if e.expires else None,
    }
