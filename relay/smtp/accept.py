"""The relay's synchronous side: check addresses, read a message's headers, store it.

Everything here is plain synchronous code that the SMTP handler runs on the relay's
own thread pool (and that tests call directly, without a socket).
"""

from __future__ import annotations

import datetime
import functools
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.utils import format_datetime

from django.db import transaction
from django.utils import timezone

from accounts.senders import Decision, SenderPolicy
from relay.models import Message, Recipient
from relay.smtp.headerblock import Unreadable, read_header_block
from relay.smtp.rows import insert_rows

_QUEUE_ALPHABET = "0123456789BCDFGHJKLMNPQRSTVWXZ"
HEADER_END = re.compile(rb"\r?\n\r?\n")
_UNSAFE_FOR_HEADER = re.compile(r"[^\x21-\x7e]")
_NUL_CR_LF = re.compile("[\x00\r\n]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")
_SURROGATE = re.compile("[\udc80-\udcff]")
# --- Addresses ------------------------------------------------------------------------
def address_problem(address: str, smtputf8: bool) -> str | None:
    """Why an envelope address is unacceptable, or None. The text goes to the client."""
    if _NUL_CR_LF.search(address):
        return "it contains a NUL, CR or LF character"
    if _CONTROL.search(address):
        return "it contains control characters"
    if _SURROGATE.search(address):  # bytes that were not UTF-8 (surrogateescape)
        return "it is not valid UTF-8"
    if not address.isascii() and not smtputf8:
        return "it contains non-ASCII characters; send MAIL FROM with the SMTPUTF8 parameter"
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        return "it is not a complete address (name@domain)"
    if len(address) > 320:
        return "it is longer than 320 characters"
    return None


def printable(text: str, limit: int = 200) -> str:
    """Text safe to echo in an SMTP reply or a header (no control characters)."""
    if text.isprintable():  # the usual case, without a loop in Python
        return text[:limit]
    cleaned = "".join(c if (c.isprintable() and not "\udc80" <= c <= "\udcff") else "?" for c in text)
    return cleaned[:limit]


@functools.lru_cache(maxsize=8192)
def _cached_check(
    username: str, emails: frozenset[str], domains: frozenset[str], subs: frozenset[str],
    pending: tuple[frozenset[str], frozenset[str], frozenset[str]], address: str,
) -> Decision:
    return SenderPolicy(username, emails, domains, subs, *pending).check(address)


def check_sender(policy: SenderPolicy, address: str) -> Decision:
    """`policy.check(address)`, remembered: a pure function of the policy's content and
    the address, and a client sends from the same few addresses all day."""
    pending = (policy.unverified_domains, policy.unverified_with_subdomains,
               policy.unconfirmed_emails)
    return _cached_check(
        policy.username, policy.emails, policy.domains, policy.domains_with_subdomains, pending,
        address,
    )


# --- Headers --------------------------------------------------------------------------
@dataclass
class HeaderSummary:
    from_addresses: list[str] = field(default_factory=list)
    sender_addresses: list[str] = field(default_factory=list)
    # (header, address) for every address of every author field (From:, Sender:,
    # Resent-From:, Resent-Sender:), in order: each must be authorized.
    authors: list[tuple[str, str]] = field(default_factory=list)
    # Set when the header block cannot be read unambiguously: the message is refused.
    unreadable: Unreadable | None = None
    header_from: str = ""
    subject: str = ""
    message_id: str = ""


def parse_headers(raw: bytes) -> HeaderSummary:
    """The author addresses and display fields of a message (header block only), read as
    `relay.headerblock` explains."""
    block = read_header_block(raw)
    summary = HeaderSummary(unreadable=block.unreadable)
    for header, addresses in block.authors:
        summary.authors.extend((header, address) for address in addresses)
        if header == "From:":
            summary.from_addresses.extend(addresses)
        elif header == "Sender:":
            summary.sender_addresses.extend(addresses)
    first = block.first
    if "from" in first:
        summary.header_from = printable(first["from"], 998)
    if "subject" in first:
        summary.subject = printable(decode_words(first["subject"]), 998)
    if "message-id" in first:
        summary.message_id = printable(first["message-id"].strip(), 998)
    return summary


def decode_words(value: str) -> str:
    """`value` with its RFC 2047 encoded-words decoded; as written if they are broken."""
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeError, ValueError):
        return value


# --- Storing --------------------------------------------------------------------------
@dataclass
class Submission:
    """One message as the handler received it, ready to be stored."""

    account_id: int
    smtp_user_id: int
    username: str
    priority: int
    envelope_from: str
    recipients: list[str]
    raw: bytes
    client_ip: str | None = None
    client_helo: str = ""
    port: int | None = None
    smtputf8: bool = False
    tls: bool = False
    headers: HeaderSummary | None = None
    # The DSN extension (RFC 3461): RET, ENVID, and (NOTIFY, ORCPT) per recipient.
    dsn_ret: str = ""
    dsn_envid: str = ""
    rcpt_dsn: list[tuple[str, str]] = field(default_factory=list)
    # The Received: header's "with" word when it is not SMTP (the send API: HTTP(S)).
    protocol: str = ""


QUEUE_ID_RANDOM_CHARS = 9


def new_queue_id() -> str:
    """16 characters, roughly time-ordered, no vowels (so no words): 7 for the time in
    milliseconds, 9 random (30**9, about 2e13 per millisecond), so that ids drawn in the
    same millisecond by busy relay processes do not collide (a collision would fail the
    whole stored group with 451)."""
    base = len(_QUEUE_ALPHABET)
    stamp = int(time.time() * 1000)
    # One draw from the system's random source for the random characters.
    tail = secrets.randbelow(base**QUEUE_ID_RANDOM_CHARS)
    chars: list[str] = []
    for _ in range(QUEUE_ID_RANDOM_CHARS):
        tail, rem = divmod(tail, base)
        chars.append(_QUEUE_ALPHABET[rem])
    for _ in range(7):
        stamp, rem = divmod(stamp, base)
        chars.append(_QUEUE_ALPHABET[rem])
    return "".join(reversed(chars))


def received_header(
    sub: Submission, queue_id: str, hostname: str, date: str | None = None
) -> bytes:
    helo = _UNSAFE_FOR_HEADER.sub("?", sub.client_helo or "unknown")[:100]
    protocol = sub.protocol or (
        ("UTF8SMTP" if sub.smtputf8 else "ESMTP") + ("SA" if sub.tls else "A"))
    date = date or format_datetime(timezone.localtime())
    line = (
        f"Received: from {helo} ([{sub.client_ip or 'unknown'}])\r\n"
        f"\tby {hostname} (SMTP+) with {protocol} id {queue_id}\r\n"
        f"\t(authenticated as {sub.username}); {date}\r\n"
    )
    return line.encode("ascii", "replace")


def store_message(sub: Submission, hostname: str = "localhost") -> str:
    """Commit the message and one Recipient per RCPT in one transaction; return its id.

    Raises whatever the database raises: the caller answers 451, never 250.
    """
    return store_messages([sub], hostname)[0]


def store_messages(subs: list[Submission], hostname: str = "localhost") -> list[str]:
    """Commit several messages (and their recipients) in one transaction.

    The relay groups the messages that finish DATA while a commit is running into the
    next one (group commit): one transaction and two INSERTs per group instead of per
    message. All or nothing: on an error nothing of the group is stored.
    """
    return [queue_id for queue_id, _ in store_messages_with_ids(subs, hostname)]


def store_messages_with_ids(subs: list[Submission], hostname: str = "localhost"
                            ) -> list[tuple[str, int]]:
    """`store_messages()`, giving each message's (queue id, Message id)."""
    messages, now = message_rows(subs, hostname)
    with transaction.atomic():
        ids = dict((queue_id, pk) for pk, queue_id in insert_rows(
            Message, messages, returning=("id", "queue_id")))
        insert_rows(Recipient, recipient_rows(subs, messages, ids, now))
    return [(str(m["queue_id"]), int(ids[m["queue_id"]])) for m in messages]


def message_rows(
    subs: list[Submission], hostname: str
) -> tuple[list[dict[str, object]], datetime.datetime]:
    """The Message rows (with new queue ids) of a group, and the group's time."""
    now = timezone.now()
    date = format_datetime(timezone.localtime(now))  # one Received: date per group
    messages: list[dict[str, object]] = []
    for sub in subs:
        headers = sub.headers or parse_headers(sub.raw)
        queue_id = new_queue_id()
        raw = received_header(sub, queue_id, hostname, date) + sub.raw
        messages.append({
            "account_id": sub.account_id,
            "smtp_user_id": sub.smtp_user_id,
            "queue_id": queue_id,
            "created": now,
            "envelope_from": sub.envelope_from,
            "header_from": headers.header_from,
            "subject": headers.subject,
            "message_id": headers.message_id,
            "size": len(raw),
            "client_ip": sub.client_ip,
            "client_helo": printable(sub.client_helo, 255),
            "port": sub.port,
            "smtputf8": sub.smtputf8,
            "raw": raw,
            "dsn_ret": sub.dsn_ret,
            "dsn_envid": sub.dsn_envid,
        })
    return messages, now


def recipient_rows(
    subs: list[Submission], messages: list[dict[str, object]], ids: Mapping[object, object],
    now: datetime.datetime,
) -> list[dict[str, object]]:
    """One Recipient row per RCPT of each message (`ids`: queue id → message id)."""
    return [
        {
            "message_id": ids[message["queue_id"]],
            "account_id": sub.account_id,
            "smtp_user_id": sub.smtp_user_id,
            "address": address,
            "priority": sub.priority,
            "created": now,
            "next_attempt_at": now,
            "notify": dsn[0],
            "orcpt": dsn[1],
        }
        for sub, message in zip(subs, messages, strict=True)
        for address, dsn in zip(sub.recipients, _rcpt_dsn(sub), strict=True)
    ]


def _rcpt_dsn(sub: Submission) -> list[tuple[str, str]]:
    """(NOTIFY, ORCPT) per recipient; ("", "") where the client gave none."""
    given = sub.rcpt_dsn[: len(sub.recipients)]
    return given + [("", "")] * (len(sub.recipients) - len(given))
