"""What to send to an upstream that may not speak SMTPUTF8.

A message needs SMTPUTF8 when its envelope addresses or its header section contain
non-ASCII. If the upstream offers SMTPUTF8 we say so in MAIL FROM and send the bytes as
received. If it does not:

- non-ASCII only in header *text* (a subject with "♥", a display name "Jörg"): those
  headers are re-encoded as RFC 2047 encoded-words and the message goes out as ASCII
  headers (the body is left alone; 8-bit bodies are flagged BODY=8BITMIME when offered);
- a non-ASCII *address* (envelope sender or recipient, or an address in a header)
  cannot be expressed without SMTPUTF8: the recipients concerned fail, with a reply that
  says so.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import AddressHeader

_FOLD_POLICY = policy.SMTP.clone(max_line_length=78)
_HEADER_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")


@dataclass
class Prepared:
    raw: bytes
    mail_options: list[str] = field(default_factory=list)
    utf8: bool = False  # send MAIL FROM/RCPT TO as UTF-8 with the SMTPUTF8 parameter
    # Recipients that cannot be delivered to this upstream, and why.
    refused: dict[str, str] = field(default_factory=dict)


def split_message(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """(header section, separator, body); the separator is b"" if there is no body."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = raw.partition(sep)
        if found:
            return head, found, body
    return raw, b"", b""


def _fields(head: bytes) -> list[bytes]:
    """Header fields, each with its continuation lines (line endings kept)."""
    out: list[bytes] = []
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and out:
            out[-1] += line
        else:
            out.append(line)
    if out and not out[-1].endswith(b"\n"):
        out[-1] += b"\r\n"
    return out


def _decode(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        # Not UTF-8 at all (an old client's Latin-1): still better shown than dropped.
        return value.decode("latin-1")


def _parse(field_bytes: bytes) -> tuple[str, str] | None:
    match = _HEADER_NAME.match(field_bytes)
    if match is None:
        return None
    name = match.group(1).decode("ascii")
    value = field_bytes[match.end() :]
    # Unfold: a folded header is one logical line.
    value = re.sub(rb"\r?\n(?=[ \t])", b"", value).strip()
    return name, _decode(value)


def non_ascii_header_addresses(raw: bytes) -> list[str]:
    """Addresses in header fields (From, To, …) whose addr-spec is not ASCII."""
    head, _, _ = split_message(raw)
    found: list[str] = []
    for field_bytes in _fields(head):
        if field_bytes.isascii():
            continue
        parsed = _parse(field_bytes)
        if parsed is None:
            continue
        header = _FOLD_POLICY.header_factory(*parsed)
        if isinstance(header, AddressHeader):
            found += [a.addr_spec for a in header.addresses if not a.addr_spec.isascii()]
    return found


def downgrade_headers(raw: bytes) -> bytes:
    """Re-encode every non-ASCII header field as RFC 2047 encoded-words.

    ASCII fields are kept byte for byte (a DKIM signature over them stays valid)."""
    head, sep, body = split_message(raw)
    out: list[bytes] = []
    for field_bytes in _fields(head):
        parsed = None if field_bytes.isascii() else _parse(field_bytes)
        if parsed is None:
            out.append(field_bytes)
            continue
        folded = _FOLD_POLICY.header_factory(*parsed).fold(policy=_FOLD_POLICY)
        out.append(folded.encode("ascii"))
    if not sep:
        return b"".join(out)
    # Our re-folded fields end in CRLF; keep the message's own separator style.
    return b"".join(out) + sep[len(sep) // 2 :] + body


def prepare(
    sender: str,
    recipients: list[str],
    raw: bytes,
    *,
    smtputf8: bool,
    eightbitmime: bool,
    host: str = "the upstream",
) -> Prepared:
    """Decide what to send to an upstream with these capabilities."""
    head, _, body = split_message(raw)
    options: list[str] = []
    if eightbitmime and not body.isascii():
        options.append("BODY=8BITMIME")
    needs_utf8 = not sender.isascii() or not head.isascii() or not all(
        r.isascii() for r in recipients
    )
    if not needs_utf8:
        return Prepared(raw, options)
    if smtputf8:
        return Prepared(raw, [*options, "SMTPUTF8"], utf8=True)

    def why(address: str) -> str:
        return (
            f"{host} does not support SMTPUTF8, which the address <{address}> needs; "
            "the message cannot be delivered there without changing the address"
        )

    if not sender.isascii():
        return Prepared(raw, options, refused={r: why(sender) for r in recipients})
    in_headers = non_ascii_header_addresses(raw)
    if in_headers:
        return Prepared(raw, options, refused={r: why(in_headers[0]) for r in recipients})
    refused = {r: why(r) for r in recipients if not r.isascii()}
    return Prepared(downgrade_headers(raw), options, refused=refused)
