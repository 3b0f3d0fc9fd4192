"""Headers as people read them: a stored message's header block and its subject, decoded
for the console and the queue command. Plain text: templates escape it like any other
user data."""

from __future__ import annotations

import re
from email import policy
from email.parser import BytesHeaderParser

from relay.smtp.accept import HEADER_END, decode_words

# An RFC 2047 encoded-word: its text holds no "?" (so the search stays linear).
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?]*\?=")


def display_subject(subject: str) -> str:
    """The subject as people read it: leftover RFC 2047 encoded-words decoded.

    The relay stores subjects decoded; this catches what it could not (or older rows),
    e.g. the seed's `=?utf-8?Q?I love you =E2=99=A5?=` → "I love you ♥". The result is
    plain text: templates escape it like any other user data.
    """
    if not _ENCODED_WORD.search(subject):
        return subject
    return decode_words(subject)


def decoded_headers(raw: bytes | memoryview | None) -> list[tuple[str, str]]:
    """(name, decoded value) for each header of a stored message, in order.

    Only the header block is parsed: the body is never decoded, let alone rendered.
    """
    if raw is None:
        return []
    data = bytes(raw)
    end = HEADER_END.search(data)
    head = data[: end.end()] if end else data
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(head)
    result: list[tuple[str, str]] = []
    for name, value in parsed.raw_items():
        try:
            text = str(policy.default.header_fetch_parse(name, value))
        except Exception:  # a malformed header must not hide the others
            text = display_subject(" ".join(str(value).split()))
        result.append((name, text))
    return result
