"""A message given as JSON, made into RFC 5322 bytes and an envelope with the stdlib's
`email` package (CRLF line ends, long lines and non-ASCII text encoded for transport).

Addresses are read with the stdlib's header parser, one address per entry ("name@domain"
or "Name <name@domain>"); an entry that is not exactly one clear address is refused with
its place and the reason, never guessed. The envelope sender is the `from` address; the
recipients are `to`, `cc` and `bcc` (Bcc is not written in the headers). Headers the API
writes itself cannot be given again in `headers`.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from email import policy
from email.errors import MessageError
from email.headerregistry import AddressHeader, HeaderRegistry
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from django.utils import timezone
from ninja import Field, Schema

from accounts.api.auth import ApiError

_HEADERS = HeaderRegistry()
_FIELD_NAME = re.compile(r"^[!-9;-~]{1,76}$")  # printable ASCII without ":" (RFC 5322 2.2)
# Written by the API from the other fields, so not accepted again in `headers`.
RESERVED = {"from", "to", "cc", "bcc", "reply-to", "subject", "date", "mime-version",
            "content-type", "content-transfer-encoding", "content-disposition"}


class AttachmentIn(Schema):
    filename: str = Field(min_length=1, max_length=255)
    content: str = Field(description="The file's bytes, base64 encoded.")
    content_type: str = Field("application/octet-stream", pattern=r"^[\w.+-]+/[\w.+-]+$")


class MessageIn(Schema):
    from_: str = Field(alias="from", description='"name@domain" or "Name <name@domain>".',
                       max_length=998)
    to: list[str] = Field(default_factory=list, max_length=10_000)
    cc: list[str] = Field(default_factory=list, max_length=10_000)
    bcc: list[str] = Field(default_factory=list, max_length=10_000,
                           description="Recipients not named in the headers.")
    reply_to: list[str] = Field(default_factory=list, max_length=100)
    subject: str = Field("", max_length=998)
    text: str | None = Field(None, description="The plain-text body.")
    html: str | None = Field(None, description="The HTML body (with `text`: an alternative).")
    headers: dict[str, str] = Field(default_factory=dict,
                                    description="More header fields, e.g. In-Reply-To.")
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=100)

    model_config = {"populate_by_name": True}


@dataclass(frozen=True)
class Composed:
    envelope_from: str
    recipients: list[str]
    raw: bytes
    smtputf8: bool


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_message", message)


def parse_address(entry: str, where: str) -> tuple[str, str]:
    """(the entry as a header writes it, its bare address), or a 422 naming `where`."""
    if any(c in entry for c in "\r\n\x00"):
        raise _invalid(f"{where}: {entry!r} contains a line break or NUL")
    header = _HEADERS("to", entry)
    assert isinstance(header, AddressHeader)
    addresses = header.addresses
    if len(addresses) != 1 or header.defects or not addresses[0].username \
            or not addresses[0].domain:
        raise _invalid(f"{where}: {entry!r} is not one address: write it as name@example.com "
                       "or Name <name@example.com>")
    return str(addresses[0]), addresses[0].addr_spec


def _header_list(entries: list[str], where: str) -> tuple[list[str], list[str]]:
    parsed = [parse_address(e, f"{where}[{i}]") for i, e in enumerate(entries)]
    return [p[0] for p in parsed], [p[1] for p in parsed]


def _decoded(attachment: AttachmentIn, where: str) -> bytes:
    try:
        return base64.b64decode(attachment.content, validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(f"{where} ({attachment.filename!r}): content is not valid base64") \
            from None


def compose(body: MessageIn, hostname: str) -> Composed:
    """The message's bytes and envelope, or a 422 naming the entry that is wrong."""
    try:
        return _compose(body, hostname)
    except (ValueError, TypeError, UnicodeError, MessageError) as exc:
        # The stdlib refuses what it cannot write (e.g. a header value it cannot encode).
        raise _invalid(f"the message cannot be written: {exc}") from None


def _compose(body: MessageIn, hostname: str) -> Composed:
    author, envelope_from = parse_address(body.from_, "from")
    to, to_addresses = _header_list(body.to, "to")
    cc, cc_addresses = _header_list(body.cc, "cc")
    _, bcc_addresses = _header_list(body.bcc, "bcc")
    reply_to, _ = _header_list(body.reply_to, "reply_to")
    recipients = list(dict.fromkeys(to_addresses + cc_addresses + bcc_addresses))
    if not recipients:
        raise _invalid("to, cc, bcc: give at least one recipient")
    smtputf8 = not all(a.isascii() for a in [envelope_from, *recipients])
    message = EmailMessage(policy=policy.SMTPUTF8 if smtputf8 else policy.SMTP)
    message["From"] = author
    if to:
        message["To"] = ", ".join(to)
    if cc:
        message["Cc"] = ", ".join(cc)
    if reply_to:
        message["Reply-To"] = ", ".join(reply_to)
    message["Subject"] = body.subject
    message["Date"] = format_datetime(timezone.localtime())
    names = {name.lower() for name in body.headers}
    if "message-id" not in names:
        message["Message-ID"] = make_msgid(domain=envelope_from.rpartition("@")[2] or hostname)
    for name, value in body.headers.items():
        if not _FIELD_NAME.match(name):
            raise _invalid(f"headers: {name!r} is not a header field name")
        if name.lower() in RESERVED:
            raise _invalid(f"headers: {name} is written from the other fields; give it there")
        if any(c in value for c in "\r\n\x00"):
            raise _invalid(f"headers: the value of {name} contains a line break or NUL")
        message[name] = value
    if body.html is not None and body.text is None:
        message.set_content(body.html, subtype="html")
    else:
        message.set_content(body.text or "")
        if body.html is not None:
            message.add_alternative(body.html, subtype="html")
    for i, attachment in enumerate(body.attachments):
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(_decoded(attachment, f"attachments[{i}]"), maintype=maintype,
                               subtype=subtype, filename=attachment.filename)
    return Composed(envelope_from, recipients, message.as_bytes(), smtputf8)
