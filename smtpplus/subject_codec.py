"""RFC 2047 subjects for clients that cannot send special characters, and back.

Encoding writes `=?utf-8?Q?…?=` and `=?utf-8?B?…?=` encoded-words of at most 75
characters each. The stdlib's `email.header.Header` also splits at character boundaries,
but it may cut a user-perceived character (an emoji with a skin tone, a flag, a family
joined with ZWJ) into two words, which some clients then render as two glyphs; here a
word boundary falls between grapheme clusters whenever the cluster fits in one word.

Decoding is lenient on purpose: people paste what their client shows, such as the
seed's `=?utf-8?Q?I love you =E2=99=A5?=` with spaces inside the word. It never raises;
it returns the text it could make out and the problems it found.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

MAX_WORD = 75
CHARSET = "utf-8"
# Characters that may stand for themselves in a Q word anywhere in a header (RFC 2047
# section 5, rule 3: the strictest context, a `phrase`).
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
MAX_INPUT = 20_000

ZWJ = "\u200d"


def _is_extend(ch: str) -> bool:
    """Does `ch` attach to the character before it (same grapheme cluster)?"""
    cp = ord(ch)
    if unicodedata.category(ch) in ("Mn", "Me", "Mc"):
        return True
    return (
        cp == 0x200C  # zero-width non-joiner
        or 0x1F3FB <= cp <= 0x1F3FF  # emoji skin-tone modifiers
        or 0xE0020 <= cp <= 0xE007F  # emoji tag sequences (subdivision flags)
        or 0xFE00 <= cp <= 0xFE0F  # variation selectors
    )


def _is_regional(ch: str) -> bool:
    return 0x1F1E6 <= ord(ch) <= 0x1F1FF


def _hangul_kind(ch: str) -> str:
    cp = ord(ch)
    if 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C:
        return "L"
    if 0x1160 <= cp <= 0x11A7 or 0xD7B0 <= cp <= 0xD7C6:
        return "V"
    if 0x11A8 <= cp <= 0x11FF or 0xD7CB <= cp <= 0xD7FB:
        return "T"
    if 0xAC00 <= cp <= 0xD7A3:
        return "LV" if (cp - 0xAC00) % 28 == 0 else "LVT"
    return ""


def _joins(prev: str, ch: str, regional_run: int) -> bool:
    if prev == "\r" and ch == "\n":
        return True
    if _is_extend(ch) or ch == ZWJ:
        return True
    if prev == ZWJ:
        return True
    if _is_regional(prev) and _is_regional(ch):
        return regional_run % 2 == 1
    p, c = _hangul_kind(prev), _hangul_kind(ch)
    if p == "L" and c in ("L", "V", "LV", "LVT"):
        return True
    if p in ("LV", "V") and c in ("V", "T"):
        return True
    return p in ("LVT", "T") and c == "T"


def graphemes(text: str) -> list[str]:
    """Split text into user-perceived characters (a close approximation of UAX #29)."""
    clusters: list[str] = []
    regional_run = 0
    for ch in text:
        if clusters and _joins(clusters[-1][-1], ch, regional_run):
            clusters[-1] += ch
        else:
            clusters.append(ch)
        regional_run = regional_run + 1 if _is_regional(ch) else 0
    return clusters


def _q_piece(data: bytes) -> str:
    out = []
    for byte in data:
        if byte in _Q_SAFE:
            out.append(chr(byte))
        elif byte == 0x20:
            out.append("_")
        else:
            out.append(f"={byte:02X}")
    return "".join(out)


def _units(text: str, fits: Callable[[str], bool]) -> list[str]:
    """Grapheme clusters, except those too big for one word, which go per code point."""
    units: list[str] = []
    for cluster in graphemes(text):
        if fits(cluster):
            units.append(cluster)
        else:
            units.extend(cluster)
    return units


def encode_words(text: str, mode: str = "Q", max_len: int = MAX_WORD) -> list[str]:
    """Encode `text` as UTF-8 encoded-words of at most `max_len` characters each."""
    mode = mode.upper()
    if mode not in ("Q", "B"):
        raise ValueError("mode must be Q or B")
    prefix = f"=?{CHARSET}?{mode}?"
    room = max_len - len(prefix) - 2
    if mode == "Q":
        def size(chunk: bytes) -> int:
            return len(_q_piece(chunk))

        def render(chunk: bytes) -> str:
            return _q_piece(chunk)
    else:
        def size(chunk: bytes) -> int:
            return 4 * ((len(chunk) + 2) // 3)

        def render(chunk: bytes) -> str:
            return base64.b64encode(chunk).decode("ascii")

    words: list[str] = []
    current = b""
    for unit in _units(text, lambda c: size(c.encode("utf-8")) <= room):
        data = unit.encode("utf-8")
        if current and size(current + data) > room:
            words.append(prefix + render(current) + "?=")
            current = b""
        current += data
    if current:
        words.append(prefix + render(current) + "?=")
    return words


@dataclass(frozen=True)
class Encoded:
    text: str
    q_words: list[str]
    b_words: list[str]

    @property
    def q(self) -> str:
        """The Q form as one header value (adjacent words separated by a space)."""
        return " ".join(self.q_words)

    @property
    def b(self) -> str:
        return " ".join(self.b_words)

    @property
    def ascii_only(self) -> bool:
        return self.text.isascii()


def encode(text: str) -> Encoded:
    """Both RFC 2047 forms of a subject. Line breaks become spaces: a subject is one line."""
    text = re.sub(r"\r\n|\r|\n", " ", text)
    return Encoded(text, encode_words(text, "Q"), encode_words(text, "B"))


# --- decoding ----------------------------------------------------------------------------

# Lenient: spaces are allowed inside the encoded text (the seed's pasted form), and so is
# a lone "?": the text runs to the first "?=". Only the start is a regex; the end is found
# with str.find, so a long header with many unterminated starts costs linear time.
_WORD_START = re.compile(r"=\?([^?\s]+)\?([^?\s]*)\?")
_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


@dataclass
class Decoded:
    text: str
    problems: list[str] = field(default_factory=list)
    words: int = 0

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)


def _decode_q(payload: str, result: Decoded) -> bytes:
    if " " in payload:
        result.problem(
            "spaces inside an encoded-word are not allowed by RFC 2047 (use _); "
            "decoded leniently"
        )
    if not payload.isascii():
        result.problem("raw non-ASCII characters inside a Q encoded-word; read as UTF-8")
    raw = payload.replace("_", " ").encode("utf-8")
    stray = re.sub(rb"=[0-9A-Fa-f]{2}", b"", raw)
    if b"=" in stray:
        result.problem("bad Q encoding: '=' not followed by two hex digits (kept as is)")
    return _HEX.sub(lambda m: bytes([int(m.group(1), 16)]), raw)


def _decode_b(payload: str, result: Decoded) -> bytes | None:
    compact = re.sub(r"\s+", "", payload)
    if not re.fullmatch(r"[A-Za-z0-9+/]*={0,2}", compact):
        result.problem("bad B encoding: characters outside base64 (kept as is)")
        return None
    stripped = compact.rstrip("=")
    if len(stripped) % 4 == 1:
        result.problem("bad B encoding: truncated base64")
        return None
    if len(compact) % 4:
        result.problem("bad B encoding: missing base64 padding (decoded anyway)")
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4))
    except (binascii.Error, ValueError):
        result.problem("bad B encoding: not valid base64")
        return None


def _charset_name(raw: str) -> str:
    # RFC 2231 allows a language after the charset: utf-8*en.
    return raw.split("*", 1)[0].strip().lower()


@dataclass(frozen=True)
class _Word:
    start: int
    end: int
    charset: str
    mode: str
    payload: str

    @property
    def length(self) -> int:
        return self.end - self.start


def _encoded_words(value: str) -> Iterator[_Word]:
    """Encoded-words in `value`, left to right, each ending at the first `?=` after its start."""
    pos = 0
    while (start := _WORD_START.search(value, pos)) is not None:
        end = value.find("?=", start.end())
        if end < 0:
            # Every later start begins further right, so none of them is terminated either.
            return
        yield _Word(start.start(), end + 2, start.group(1), start.group(2),
                    value[start.end() : end])
        pos = end + 2


def _to_text(data: bytes, charset: str, result: Decoded) -> str:
    try:
        return data.decode(charset)
    except UnicodeError:
        try:
            text = data.decode(charset, errors="replace")
        except (LookupError, ValueError):
            # idna and punycode refuse to replace what they cannot decode.
            result.problem(f"bad encoding: the bytes are not valid {charset}; shown as UTF-8")
        else:
            result.problem(f"bad encoding: the bytes are not valid {charset}; "
                           "undecodable bytes are shown as \ufffd")
            return text
    except (LookupError, ValueError):  # ValueError: a name the codec registry refuses (a NUL)
        result.problem(f"unknown charset {charset!r}; shown as UTF-8")
    return data.decode("utf-8", errors="replace")


def decode(header: str) -> Decoded:
    """Decode a pasted header value (or a whole `Subject:` line). Never raises."""
    result = Decoded("")
    value = header or ""
    if len(value) > MAX_INPUT:
        value = value[:MAX_INPUT]
        result.problem(f"only the first {MAX_INPUT} characters were decoded")
    value = re.sub(r"\r?\n([ \t])", r"\1", value)  # unfold
    value = re.sub(r"[\r\n]+", " ", value).strip()
    if re.match(r"(?i)subject\s*:", value):
        value = value.split(":", 1)[1].strip()

    parts: list[str] = []
    # Bytes of adjacent encoded-words in one charset are joined before decoding, so a
    # character split across two words (a common client bug) still comes out whole.
    pending: tuple[str, bytearray] | None = None

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            parts.append(_to_text(bytes(pending[1]), pending[0], result))
            pending = None

    pos = 0
    last_was_word = False
    for word in _encoded_words(value):
        between = value[pos : word.start]
        if between and not (last_was_word and between.strip() == ""):
            flush()
            parts.append(between)
            last_was_word = False
        pos = word.end
        raw_charset, mode, payload = word.charset, word.mode, word.payload
        result.words += 1
        if word.length > MAX_WORD:
            result.problem(f"an encoded-word is longer than {MAX_WORD} characters")
        charset = _charset_name(raw_charset)
        data: bytes | None
        if mode.upper() == "Q":
            data = _decode_q(payload, result)
        elif mode.upper() == "B":
            data = _decode_b(payload, result)
        else:
            result.problem(f"unknown encoding {mode!r} (expected Q or B); kept as is")
            data = None
        if data is None:
            flush()
            parts.append(value[word.start : word.end])
            last_was_word = False
            continue
        if pending is not None and pending[0] != charset:
            flush()
        if pending is None:
            pending = (charset, bytearray())
        pending[1].extend(data)
        last_was_word = True
    flush()
    parts.append(value[pos:])
    text = "".join(parts)
    if "=?" in text and result.words == 0:
        result.problem("looks like an encoded-word but is not complete (it needs =?charset?Q?text?=)")
    if _CONTROL.search(text):
        result.problem("the decoded text contains control characters (shown as \ufffd)")
        text = _CONTROL.sub("\ufffd", text)
    result.text = text
    return result
