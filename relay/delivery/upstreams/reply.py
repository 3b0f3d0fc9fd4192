"""The answer a transport gives for one recipient, and how a network problem becomes one.

Transports never raise for a network or protocol problem: a refused connection, a
timeout or a lost connection is a temporary (4.x.x) `Reply` like any other.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aiosmtplib

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\s*")


@dataclass(frozen=True)
class Reply:
    """The answer for one recipient: the upstream's reply, or ours when it gave none
    (code None; the enhanced code's class then says temporary or permanent)."""

    code: int | None
    enhanced: str
    text: str
    host: str = ""
    # Connection-stage refusals (greeting, EHLO, AUTH, STARTTLS) are retried like 4xx,
    # as Postfix does: they say nothing about this recipient.
    force_temporary: bool = False

    @classmethod
    def from_smtp(cls, code: int, message: str, host: str, force_temporary: bool = False) -> Reply:
        text = " ".join(message.split())
        match = _ENHANCED.match(text)
        enhanced = match.group(1) if match else ""
        return cls(code, enhanced, text[match.end() :] if match else text, host, force_temporary)

    @property
    def outcome(self) -> str:
        """"delivered", "deferred" or "failed"."""
        if self.code is not None and 200 <= self.code < 300:
            return "delivered"
        if self.force_temporary:
            return "deferred"
        if self.code is not None:
            return "failed" if 500 <= self.code < 600 else "deferred"
        return "failed" if self.enhanced.startswith("5") else "deferred"

    def __str__(self) -> str:
        return " ".join(str(p) for p in (self.code, self.enhanced, self.text) if p)


def network_error(exc: BaseException, host: str, doing: str) -> Reply:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return Reply.from_smtp(exc.code, exc.message, host, force_temporary=True)
    if isinstance(exc, TimeoutError):
        return Reply(None, "4.4.2", f"Timed out {doing} {host}", host)
    detail = str(exc) or type(exc).__name__
    return Reply(None, "4.4.1", f"Could not {doing} {host}: {detail}", host)
