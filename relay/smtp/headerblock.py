"""A message's header block, read the way the strictest reader after the relay reads it.

The relay decides on the author fields (From:, Sender:, Resent-From:, Resent-Sender:), so
it must see the same fields and the same addresses as every program that reads the
message later: Postfix's cleanup (which takes `From :` as a From: field, the obsolete
syntax of RFC 5322 §4.5.1), mail readers, DMARC. Where two careful readers could see two
different authors, the message is refused instead of guessed:

- the header block ends at the first empty line; every other line is a field
  (`name *WSP ":"`) or a continuation (it starts with a space or a tab); anything else,
  and a CR that does not end a line, makes the block unreadable;
- an author field is found whatever the case of its name, and also with blanks before
  the colon, which refuses it (Postfix reads `From :` as From:, the `email` package and
  Node's mailparser do not); its value is unfolded and parsed with the `email` package's
  RFC 5322 parser, and any defect the parser reports, a group, or an incomplete address
  refuses it;
- From: and Sender: may appear once; Sender: and Resent-Sender: hold exactly one address.
"""

from __future__ import annotations

import email.policy
import functools
import re
from dataclasses import dataclass, field
from email.errors import HeaderParseError

# Field name (lower case) → how replies and events name it.
AUTHOR_FIELDS = {
    "from": "From:",
    "sender": "Sender:",
    "resent-from": "Resent-From:",
    "resent-sender": "Resent-Sender:",
}
_ONCE = frozenset({"from", "sender"})
_ONE_ADDRESS = frozenset({"sender", "resent-sender"})
# RFC 5322 ftext, then the obsolete blanks before the colon (§4.5.1).
_FIELD_NAME = re.compile(r"([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_BLOCK_END = re.compile(rb"\n\r?\n")
_SURROGATE = re.compile("[\udc80-\udcff]")
_address_list = email.policy.SMTPUTF8.header_factory


@dataclass(frozen=True)
class Unreadable:
    """Why the header block cannot be read unambiguously."""

    header: str  # "From:" …, or "" when a line of the block is not a field at all
    text: str  # the field's value or the line, as written
    why: str  # what is wrong, in words for the client and the console


@dataclass
class HeaderBlock:
    # (how the field is named, its addresses) for every author field, in order.
    authors: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)
    # The first value of each field (lower-case name → unfolded value, leading blanks
    # removed), for display.
    first: dict[str, str] = field(default_factory=dict)
    unreadable: Unreadable | None = None


def header_block(raw: bytes) -> bytes:
    """The header block of a message: everything before the first empty line."""
    if raw.startswith((b"\n", b"\r\n")):
        return b""
    match = _BLOCK_END.search(raw)
    return raw[: match.start()] if match else raw.removesuffix(b"\n")


def read_header_block(raw: bytes) -> HeaderBlock:
    """Read the header block of `raw` (the rest is not looked at)."""
    block = HeaderBlock()
    text = header_block(raw).decode("utf-8", "surrogateescape")
    if not text:
        return block
    fields: list[tuple[str, bool, list[str]]] = []  # (name, blanks before the colon, lines)
    for number, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        if "\r" in line:
            block.unreadable = Unreadable(
                "", line, f"line {number} holds a CR that does not end the line (readers "
                "disagree on where such a line ends)")
            return block
        if line[:1] in (" ", "\t"):
            if not fields:
                block.unreadable = Unreadable(
                    "", line, "the header block starts with a continuation line")
                return block
            fields[-1][2].append(line)
            continue
        match = _FIELD_NAME.match(line)
        if match is None:
            block.unreadable = Unreadable(
                "", line, f"line {number} is neither a header field (name: value) nor a "
                "continuation line")
            return block
        name = match.group(1)
        fields.append((name.lower(), match.end() > len(name) + 1, [line[match.end():]]))
    seen: dict[str, int] = {}
    for name, obsolete, parts in fields:
        value = "".join(parts)  # unfolded: RFC 5322 §2.2.3 removes only the line breaks
        block.first.setdefault(name, value.lstrip(" \t"))
        label = AUTHOR_FIELDS.get(name)
        if label is None:
            continue
        if obsolete:
            block.unreadable = Unreadable(label, value.strip(), (
                "its name has blanks before the colon (obsolete syntax that readers "
                "disagree on: some read it as that header, others as the start of the body)"))
            return block
        seen[name] = seen.get(name, 0) + 1
        if name in _ONCE and seen[name] > 1:
            block.unreadable = Unreadable(
                label, value.strip(), f"the message has more than one {label} header")
            return block
        addresses, why = read_addresses(value)
        if not why and name in _ONE_ADDRESS and len(addresses) != 1:
            why = "it must hold exactly one address"
        if why:
            block.unreadable = Unreadable(label, value.strip(), why)
            return block
        block.authors.append((label, addresses))
    return block


@functools.lru_cache(maxsize=4096)
def read_addresses(value: str) -> tuple[tuple[str, ...], str]:
    """The addresses of an author field's unfolded value, and "" — or no addresses and
    why the value cannot be read unambiguously.

    Cached: a pure function of the text, and an application sends with the same From:
    line all day. The `email` package's modern parser, not the legacy getaddresses()
    (which can be fooled, CVE-2023-27043); its defects are where readers part ways, e.g.
    `shop@acme.example <evil@evil.example>` (an address as an unquoted display name),
    read as shop@… by one parser and as evil@… by mail readers and DMARC.
    """
    if _SURROGATE.search(value):  # bytes that were not UTF-8 (surrogateescape)
        return (), "it is not valid UTF-8"
    try:
        header = _address_list("From", value)
        groups = header.groups
    except (AttributeError, HeaderParseError, IndexError, ValueError):
        return (), "it cannot be parsed as a list of addresses"
    if header.defects:
        return (), f"it does not parse cleanly: {header.defects[0]}"
    found: list[str] = []
    for group in groups:
        if group.display_name is not None:
            return (), "it uses the group syntax (name: addresses;), not plain addresses"
        for address in group.addresses:
            if not address.username or not address.domain:
                return (), f"{address.addr_spec!r} is not a complete address (name@domain)"
            found.append(address.addr_spec)
    if not found:
        return (), "it holds no address"
    return tuple(found), ""
