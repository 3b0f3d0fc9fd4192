"""Header blocks the relay must read as later readers do (the SMTP+ user of the tests,
cast.acme_smtp, may send from acme.test only).

ACCEPTED: (id, header block, the authors the relay checks as (header, address)) — each
must also be what the independent readers in mail_readers.py find.
REFUSED: (id, header block, the start of the reply after "550 ", a part of the reason).
"""

from __future__ import annotations

REST = b"To: someone@example.net\r\nSubject: Hello\r\nMessage-ID: <t@acme.test>\r\n"
BODY = b"\r\nHello.\r\n"


def message(block: bytes) -> bytes:
    """A whole message: `block` (its own line ends) then the other headers and a body."""
    return block + REST + BODY


F = "From:"
SHOP = [(F, "shop@acme.test")]

ACCEPTED: list[tuple[str, bytes, list[tuple[str, str]]]] = [
    ("bare address", b"From: shop@acme.test\r\n", SHOP),
    ("angle address", b"From: <shop@acme.test>\r\n", SHOP),
    ("unquoted display name", b"From: Acme Shop <shop@acme.test>\r\n", SHOP),
    ("quoted display name", b'From: "Acme Shop" <shop@acme.test>\r\n', SHOP),
    ("quoted display name with comma, parentheses and an address",
     b'From: "Shop, Inc. (sales@evil.example)" <shop@acme.test>\r\n', SHOP),
    ("quoted display name with escaped quotes",
     b'From: "Shop \\"The Best\\"" <shop@acme.test>\r\n', SHOP),
    ("comment as display name", b"From: shop@acme.test (Acme Shop)\r\n", SHOP),
    ("comment holding another address", b"From: shop@acme.test (evil@evil.example)\r\n", SHOP),
    ("comment after the angle address", b'From: "Shop" <shop@acme.test> (web)\r\n', SHOP),
    ("encoded-word display name (Q)", b"From: =?utf-8?Q?Caf=C3=A9?= <shop@acme.test>\r\n", SHOP),
    ("encoded-word display name (B)", b"From: =?utf-8?B?QWNtZSBTaG9w?= <shop@acme.test>\r\n",
     SHOP),
    ("encoded-word display name that decodes to an address",
     b"From: =?utf-8?Q?evil=40evil.example?= <shop@acme.test>\r\n", SHOP),
    ("UTF-8 display name", "From: Café Ünïcode <shop@acme.test>\r\n".encode(), SHOP),
    ("folded before the angle address", b"From: Acme Shop\r\n <shop@acme.test>\r\n", SHOP),
    ("folded with a tab", b'From: "Acme Shop"\r\n\t<shop@acme.test>\r\n', SHOP),
    ("folded after the colon", b"From:\r\n shop@acme.test\r\n", SHOP),
    ("upper-case name", b"FROM: shop@acme.test\r\n", SHOP),
    ("lower-case name", b"from: shop@acme.test\r\n", SHOP),
    ("no blank after the colon", b"From:shop@acme.test\r\n", SHOP),
    ("upper-case domain", b"From: Shop <shop@ACME.TEST>\r\n", [(F, "shop@ACME.TEST")]),
    ("several authors and a Sender:",
     b"From: a@acme.test, B <b@acme.test>\r\nSender: ops@acme.test\r\n",
     [(F, "a@acme.test"), (F, "b@acme.test"), ("Sender:", "ops@acme.test")]),
    ("lower-case sender", b"From: shop@acme.test\r\nsender: Ops <ops@acme.test>\r\n",
     [*SHOP, ("Sender:", "ops@acme.test")]),
    ("Resent-From: and Resent-Sender:",
     b"Resent-From: ops@acme.test\r\nResent-Sender: bot@acme.test\r\nFrom: shop@acme.test\r\n",
     [("Resent-From:", "ops@acme.test"), ("Resent-Sender:", "bot@acme.test"), *SHOP]),
    ("two Resent-From: blocks",
     b"Resent-From: a@acme.test\r\nResent-From: b@acme.test\r\nFrom: shop@acme.test\r\n",
     [("Resent-From:", "a@acme.test"), ("Resent-From:", "b@acme.test"), *SHOP]),
    ("From: after the other fields", b"X-Mailer: test\r\nFrom: shop@acme.test\r\n", SHOP),
]

# The same forms with LF line ends (as many programs hand a message to sendmail).
ACCEPTED += [
    ("LF line ends: bare address", b"From: shop@acme.test\n", SHOP),
    ("LF line ends: folded", b"From: Acme Shop\n <shop@acme.test>\n", SHOP),
]

NOT_READABLE = "5.6.0 The From: header"
BLOCK = "5.6.0 The message's header block is malformed"
DEFECT = "does not parse cleanly"

REFUSED: list[tuple[str, bytes, str, str]] = [
    # An address as an unquoted display name: mail readers and DMARC take evil@.
    ("address as an unquoted display name",
     b"From: shop@acme.test <evil@evil.example>\r\n", NOT_READABLE, DEFECT),
    ("authorized address as an unquoted display name",
     b"From: sales@acme.test <evil@evil.example>\r\n", NOT_READABLE, DEFECT),
    ("folded address after an address",
     b"From: shop@acme.test\r\n evil@evil.example\r\n", NOT_READABLE, DEFECT),
    ("two addresses without a comma", b"From: shop@acme.test evil@evil.example\r\n",
     NOT_READABLE, DEFECT),
    ("text after the angle address", b"From: <shop@acme.test> evil@evil.example\r\n",
     NOT_READABLE, DEFECT),
    ("unquoted comma in the display name", b"From: Shop, Inc. <shop@acme.test>\r\n",
     NOT_READABLE, DEFECT),
    ("missing closing angle bracket", b"From: Shop <shop@acme.test\r\n", NOT_READABLE, DEFECT),
    ("route in the angle address", b"From: <@evil.example:shop@acme.test>\r\n",
     NOT_READABLE, DEFECT),
    ("two at signs", b"From: shop@acme.test@evil.example\r\n", NOT_READABLE, DEFECT),
    ("HTML in the display name", b"From: <b>Evil</b> <ceo@evil.example>\r\n",
     NOT_READABLE, DEFECT),
    ("leading empty element", b"From: , shop@acme.test\r\n", NOT_READABLE, DEFECT),
    ("NUL in the address", b"From: shop@acme.test\x00evil@evil.example\r\n",
     NOT_READABLE, DEFECT),
    ("bytes that are not UTF-8", b"From: Sh\xe9p <shop@acme.test>\r\n", NOT_READABLE,
     "not valid UTF-8"),
    ("group", b"From: Team: shop@acme.test;\r\n", NOT_READABLE, "group syntax"),
    ("empty group", b"From: undisclosed-recipients:;\r\n", NOT_READABLE, "group syntax"),
    ("empty From:", b"From:\r\n", NOT_READABLE, "holds no address"),
    ("empty angle address", b"From: <>\r\n", NOT_READABLE, ""),
    # Obsolete syntax (RFC 5322 §4.5.1): Postfix reads it as From:, the email package
    # as the start of the body, mailparser not at all.
    ("obsolete From : before a From:",
     b"From : evil@evil.example\r\nFrom: shop@acme.test\r\n", NOT_READABLE, "before the colon"),
    ("obsolete From<TAB>: after a From:",
     b"From: shop@acme.test\r\nFrom\t: evil@evil.example\r\n", NOT_READABLE, "before the colon"),
    ("obsolete From : alone, authorized", b"From : shop@acme.test\r\n", NOT_READABLE,
     "before the colon"),
    ("obsolete Sender :", b"From: shop@acme.test\r\nSender  : evil@evil.example\r\n",
     "5.6.0 The Sender: header", "before the colon"),
    ("second From:", b"From: shop@acme.test\r\nFrom: evil@evil.example\r\n", NOT_READABLE,
     "more than one From:"),
    ("second From:, both authorized", b"From: shop@acme.test\r\nFrom: ops@acme.test\r\n",
     NOT_READABLE, "more than one From:"),
    ("second From: in another case", b"From: shop@acme.test\r\nfROM: evil@evil.example\r\n",
     NOT_READABLE, "more than one From:"),
    ("second Sender:",
     b"From: shop@acme.test\r\nSender: shop@acme.test\r\nSender: evil@evil.example\r\n",
     "5.6.0 The Sender: header", "more than one Sender:"),
    ("Sender: with two addresses", b"From: shop@acme.test\r\nSender: a@acme.test, b@acme.test\r\n",
     "5.6.0 The Sender: header", "exactly one address"),
    ("Resent-From: that does not parse",
     b"Resent-From: ops@acme.test <evil@evil.example>\r\nFrom: shop@acme.test\r\n",
     "5.6.0 The Resent-From: header", DEFECT),
    # Lines that are neither a field nor a continuation.
    ("bare CR between two fields", b"From: shop@acme.test\rFrom: evil@evil.example\r\n",
     BLOCK, "CR that does not end the line"),
    ("bare CR before a continuation", b"From: shop@acme.test\r\r\n evil@evil.example\r\n",
     BLOCK, "CR that does not end the line"),
    ("Unix From line", b"From evil@evil.example Mon Jan  1 00:00:00 2024\r\nFrom: shop@acme.test\r\n",
     BLOCK, "line 1 is neither a header field"),
    ("continuation without its blank", b"From: shop@acme.test\r\nevil@evil.example\r\n",
     BLOCK, "line 2 is neither a header field"),
    ("header block starting with a continuation", b" From: evil@evil.example\r\nFrom: shop@acme.test\r\n",
     BLOCK, "starts with a continuation line"),
    ("field name that is not ASCII", "Fröm: evil@evil.example\r\nFrom: shop@acme.test\r\n".encode(),
     BLOCK, "line 1 is neither a header field"),
    ("empty field name", b": evil@evil.example\r\nFrom: shop@acme.test\r\n", BLOCK,
     "line 1 is neither a header field"),
]

# Clean headers that name an author the user may not send as: refused as unauthorized.
UNAUTHORIZED: list[tuple[str, bytes, str]] = [
    ("authorized address as the quoted display name",
     b'From: "shop@acme.test" <evil@evil.example>\r\n', "<evil@evil.example> in the From: header"),
    ("encoded-word display name", b"From: =?utf-8?Q?shop=40acme.test?= <evil@evil.example>\r\n",
     "<evil@evil.example> in the From: header"),
    ("second author", b"From: shop@acme.test, evil@evil.example\r\n",
     "<evil@evil.example> in the From: header"),
    ("Sender:", b"From: shop@acme.test\r\nSender: evil@evil.example\r\n",
     "<evil@evil.example> in the Sender: header"),
    ("Resent-From:", b"Resent-From: evil@evil.example\r\nFrom: shop@acme.test\r\n",
     "<evil@evil.example> in the Resent-From: header"),
    ("Resent-Sender:", b"resent-sender: evil@evil.example\r\nFrom: shop@acme.test\r\n",
     "<evil@evil.example> in the Resent-Sender: header"),
    ("comment inside the local part", b"From: Shop <evil(shop@acme.test)@evil.example>\r\n",
     "<evil@evil.example> in the From: header"),
]
