"""The parameters of the SMTP DSN extension (RFC 3461), read from clients and written to
upstreams.

    MAIL FROM:<a@b> RET=FULL|HDRS ENVID=xtext
    RCPT TO:<c@d> NOTIFY=NEVER|SUCCESS,FAILURE,DELAY ORCPT=rfc822;xtext

The relay reads them here (before aiosmtpd, which upper-cases parameters and would lose
the case of ENVID and ORCPT), stores them with the message and its recipients, and the
delivery step gives them back to an upstream that offers DSN. Bad values are refused
with a reply that names the parameter, never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

NOTIFY_WORDS = frozenset({"SUCCESS", "FAILURE", "DELAY"})
ENVID_MAX = 100
ORCPT_MAX = 500
_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")


class DsnParamError(ValueError):
    """A DSN parameter the relay refuses: the message is the reply to give."""


def xtext_decode(value: str) -> str:
    """RFC 3461 section 4: "+XX" is the octet XX; every other character is itself."""
    if any(not (33 <= ord(c) <= 126) or c == "=" for c in value):
        raise ValueError("xtext has only printable ASCII characters and no '='")
    if re.search(r"\+(?![0-9A-F]{2})", value):
        raise ValueError("'+' in xtext must be followed by two upper-case hex digits")
    return _XTEXT_HEX.sub(lambda m: chr(int(m.group(1), 16)), value)


def xtext_encode(value: str) -> str:
    return "".join(
        c if 33 <= ord(c) <= 126 and c not in "+=" else "".join(f"+{b:02X}" for b in c.encode())
        for c in value
    )


def _split(params: str) -> list[tuple[str, str]]:
    out = []
    for word in params.split():
        key, _, value = word.partition("=")
        out.append((key, value))
    return out


def _join(kept: list[tuple[int, str]], original: list[str]) -> str:
    return " ".join(original[i] for i, _ in kept)


def take_mail_params(params: str) -> tuple[str, str, str]:
    """(the other parameters, RET, decoded ENVID) of MAIL FROM's parameters."""
    ret = envid = ""
    words = params.split()
    kept: list[tuple[int, str]] = []
    for i, (key, value) in enumerate(_split(params)):
        upper = key.upper()
        if upper == "RET":
            if ret:
                raise DsnParamError("501 5.5.4 RET given twice")
            if value.upper() not in ("FULL", "HDRS"):
                raise DsnParamError("501 5.5.4 RET must be FULL or HDRS")
            ret = value.upper()
        elif upper == "ENVID":
            if envid:
                raise DsnParamError("501 5.5.4 ENVID given twice")
            try:
                envid = xtext_decode(value)
            except ValueError as exc:
                raise DsnParamError(f"501 5.5.4 ENVID is not valid xtext: {exc}") from None
            if not envid or len(envid) > ENVID_MAX:
                raise DsnParamError(f"501 5.5.4 ENVID must be 1 to {ENVID_MAX} characters")
        else:
            kept.append((i, key))
    return _join(kept, words), ret, envid


def take_rcpt_params(params: str) -> tuple[str, str, str]:
    """(the other parameters, NOTIFY normalised, ORCPT as "type;address") of RCPT TO's."""
    notify = orcpt = ""
    words = params.split()
    kept: list[tuple[int, str]] = []
    for i, (key, value) in enumerate(_split(params)):
        upper = key.upper()
        if upper == "NOTIFY":
            if notify:
                raise DsnParamError("501 5.5.4 NOTIFY given twice")
            notify = parse_notify(value)
        elif upper == "ORCPT":
            if orcpt:
                raise DsnParamError("501 5.5.4 ORCPT given twice")
            kind, semi, address = value.partition(";")
            if not semi or not kind or not address:
                raise DsnParamError("501 5.5.4 ORCPT must be addr-type;address, e.g. rfc822;a@b.example")
            try:
                decoded = xtext_decode(address)
            except ValueError as exc:
                raise DsnParamError(f"501 5.5.4 ORCPT is not valid xtext: {exc}") from None
            orcpt = f"{kind.lower()};{decoded}"
            if len(orcpt) > ORCPT_MAX:
                raise DsnParamError(f"501 5.5.4 ORCPT is longer than {ORCPT_MAX} characters")
        else:
            kept.append((i, key))
    return _join(kept, words), notify, orcpt


def parse_notify(value: str) -> str:
    """NOTIFY's value normalised ("NEVER", or its words in a fixed order)."""
    words = [w.strip().upper() for w in value.split(",")]
    if words == ["NEVER"]:
        return "NEVER"
    if not words or any(w not in NOTIFY_WORDS for w in words) or len(set(words)) != len(words):
        raise DsnParamError(
            "501 5.5.4 NOTIFY must be NEVER, or one or more of SUCCESS, FAILURE, DELAY "
            "separated by commas")
    return ",".join(w for w in ("SUCCESS", "FAILURE", "DELAY") if w in words)


def wants(notify: str, word: str) -> bool:
    """Whether NOTIFY asks for `word` (FAILURE and DELAY are the default without it)."""
    if not notify:
        return word in ("FAILURE", "DELAY")
    return word in notify.split(",")


@dataclass
class DsnRequest:
    """What a message asked of the DSN extension, to pass on to the next server."""

    ret: str = ""
    envid: str = ""
    # address → (NOTIFY, ORCPT)
    recipients: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.ret or self.envid or any(n or o for n, o in self.recipients.values()))

    def mail_options(self) -> list[str]:
        options = [f"RET={self.ret}"] if self.ret else []
        if self.envid:
            options.append(f"ENVID={xtext_encode(self.envid)}")
        return options

    def rcpt_options(self, address: str) -> list[str]:
        notify, orcpt = self.recipients.get(address, ("", ""))
        options = [f"NOTIFY={notify}"] if notify else []
        if orcpt:
            kind, _, addr = orcpt.partition(";")
            options.append(f"ORCPT={kind};{xtext_encode(addr)}")
        return options
