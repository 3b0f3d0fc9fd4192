"""The answer a transport gives for one recipient, and how a network problem becomes one.

Transports never raise for a network or protocol problem: a refused connection, a
timeout or a lost connection is a temporary `Reply` like any other. Every reply that did
not deliver carries its `FailReason`, set here or by the transport that knows it; the
enhanced code of a reply SMTP+ makes up itself is the RFC 3463 status Postfix would log
for it (so logs and DSNs read as usual), never what the product reads the reason from.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass

import aiosmtplib

from relay.models import PERMANENT_REASONS, FailReason

_ENHANCED = re.compile(r"^([245]\.\d{1,3}\.\d{1,3})\s*")


class TransportError(Exception):
    """A failure a transport detects itself and names (e.g. TLS required, not offered)."""

    def __init__(self, reason: FailReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Reply:
    """The answer for one recipient: the upstream's reply, or ours when it gave none
    (code None; `reason` then says what happened, and whether a retry can help)."""

    code: int | None
    enhanced: str
    text: str
    host: str = ""
    # Connection-stage refusals (greeting, EHLO, AUTH, STARTTLS) are retried like 4xx,
    # as Postfix does: they say nothing about this recipient.
    force_temporary: bool = False
    # Blank for a delivery; derived from the code when the upstream answered.
    reason: str = ""
    # The upstream took the recipient's DSN request (RFC 3461): it reports from now on.
    dsn_passed: bool = False

    def __post_init__(self) -> None:
        if not self.reason and self.outcome != "delivered":
            object.__setattr__(self, "reason", _reason_of_reply(self.code, self.force_temporary))

    @classmethod
    def from_smtp(
        cls, code: int, message: str, host: str, force_temporary: bool = False,
        dsn_passed: bool = False,
    ) -> Reply:
        text = " ".join(message.split())
        match = _ENHANCED.match(text)
        enhanced = match.group(1) if match else ""
        return cls(code, enhanced, text[match.end() :] if match else text, host, force_temporary,
                   dsn_passed=dsn_passed)

    @property
    def outcome(self) -> str:
        """"delivered", "deferred" or "failed"."""
        if self.code is not None and 200 <= self.code < 300:
            return "delivered"
        if self.force_temporary:
            return "deferred"
        if self.code is not None:
            return "failed" if 500 <= self.code < 600 else "deferred"
        return "failed" if self.reason in PERMANENT_REASONS else "deferred"

    def __str__(self) -> str:
        return " ".join(str(p) for p in (self.code, self.enhanced, self.text) if p)


def _reason_of_reply(code: int | None, force_temporary: bool) -> FailReason:
    if code is None:
        # Every reply of our own names its reason; one that does not is our bug.
        return FailReason.INTERNAL_ERROR
    if force_temporary:
        return FailReason.SESSION_REFUSED
    return FailReason.REJECTED if 500 <= code < 600 else FailReason.TEMPORARY


def _tls_trouble(exc: BaseException) -> bool:
    """aiosmtplib wraps a failed handshake or certificate check in its own errors."""
    seen: BaseException | None = exc
    for _ in range(5):  # a short chain: the wrapper and what it wraps
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def network_error(
    exc: BaseException, host: str, doing: str,
    reason: FailReason = FailReason.CONNECT_FAILED,
) -> Reply:
    """The reply for a failure while `doing` (e.g. "connect to") `host`; `reason` is
    what such a failure means at that stage, unless the error itself says more."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return Reply.from_smtp(exc.code, exc.message, host, force_temporary=True)
    if isinstance(exc, TransportError):
        return Reply(None, "4.7.4", f"Could not {doing} {host}: {exc}", host, reason=exc.reason)
    if isinstance(exc, TimeoutError):
        return Reply(None, "4.4.2", f"Timed out {doing} {host}", host, reason=FailReason.TIMEOUT)
    detail = str(exc) or type(exc).__name__
    if _tls_trouble(exc):
        reason = FailReason.TLS_FAILED
    return Reply(None, "4.4.1", f"Could not {doing} {host}: {detail}", host, reason=reason)
