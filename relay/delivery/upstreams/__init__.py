"""Where delivered mail goes: `RELAY_UPSTREAM` parsing and the transports.

    smtp://[user:pass@]host:port[?tls=require][&verify=no]   smarthost, STARTTLS if offered
    smtps://[user:pass@]host:port[?verify=no]                smarthost, implicit TLS
    mx[?verify=yes]                                           the recipient domain's MX hosts
    maildir:PATH                                              local Maildir (development)

Every transport answers `send(sender, recipients, raw)` with one `Reply` per recipient
and never raises for a network or protocol problem: a refused connection, a timeout or a
lost connection is a temporary (4.x.x) reply like any other.
"""

from __future__ import annotations

import asyncio
import mailbox
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from django.conf import settings

from relay.delivery.upstreams import downgrade


class UpstreamConfigError(ValueError):
    """RELAY_UPSTREAM is not a value we understand; the message says what is expected."""


EXPECTED = (
    "expected smtp://[user:pass@]host:port[?tls=require], smtps://[user:pass@]host:port, "
    "mx or maildir:PATH"
)


@dataclass(frozen=True)
class UpstreamSpec:
    kind: str  # "smtp", "smtps", "mx" or "maildir"
    host: str = ""
    port: int = 0
    username: str = ""
    password: str = ""
    require_tls: bool = False
    verify: bool = True
    path: str = ""
    # Test and unusual setups only: where `mx` connects and which nameserver it asks.
    mx_port: int = 25
    nameserver: str = ""

    @property
    def label(self) -> str:
        if self.kind == "maildir":
            return f"maildir:{self.path}"
        if self.kind == "mx":
            return "mx"
        return f"{self.host}:{self.port}"


def _flag(params: dict[str, list[str]], name: str, default: bool) -> bool:
    values = params.get(name)
    if not values:
        return default
    value = values[-1].lower()
    if value in ("1", "yes", "true", "on", "require", "required"):
        return True
    if value in ("0", "no", "false", "off"):
        return False
    raise UpstreamConfigError(f"RELAY_UPSTREAM: {name}={values[-1]!r} is not yes/no")


def parse_upstream(url: str) -> UpstreamSpec:
    url = url.strip()
    if url.startswith("maildir:"):
        path = url[len("maildir:") :]
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise UpstreamConfigError(f"RELAY_UPSTREAM {url!r}: maildir needs a path; {EXPECTED}")
        return UpstreamSpec("maildir", path=str(Path(path).expanduser()))
    parts = urlsplit(url)
    params = parse_qs(parts.query)
    known = {"tls", "verify", "port", "nameserver"}
    unknown = set(params) - known
    if unknown:
        raise UpstreamConfigError(
            f"RELAY_UPSTREAM {url!r}: unknown option(s) {', '.join(sorted(unknown))}"
        )
    if url == "mx" or url.startswith("mx?") or parts.scheme == "mx":
        port = params.get("port", ["25"])[-1]
        if not port.isdigit():
            raise UpstreamConfigError(f"RELAY_UPSTREAM {url!r}: port must be a number")
        return UpstreamSpec(
            "mx",
            verify=_flag(params, "verify", False),
            mx_port=int(port),
            nameserver=params.get("nameserver", [""])[-1],
        )
    if parts.scheme not in ("smtp", "smtps"):
        raise UpstreamConfigError(f"RELAY_UPSTREAM {url!r}: {EXPECTED}")
    try:
        port_number = parts.port
    except ValueError as exc:
        raise UpstreamConfigError(f"RELAY_UPSTREAM {url!r}: bad port ({exc})") from None
    if not parts.hostname:
        raise UpstreamConfigError(f"RELAY_UPSTREAM {url!r}: no host; {EXPECTED}")
    implicit = parts.scheme == "smtps"
    return UpstreamSpec(
        parts.scheme,
        host=parts.hostname,
        port=port_number or (465 if implicit else 25),
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        require_tls=implicit or _flag(params, "tls", False),
        verify=_flag(params, "verify", True),
    )


# --- replies ----------------------------------------------------------------------------
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


class Transport(Protocol):
    label: str

    async def send(self, sender: str, recipients: list[str], raw: bytes) -> dict[str, Reply]: ...

    async def close(self) -> None: ...


# --- one SMTP transaction ----------------------------------------------------------------
@dataclass
class TransactionResult:
    replies: dict[str, Reply]
    broken: bool = False  # the connection is unusable afterwards
    data_sent: bool = False


async def smtp_transaction(
    smtp: aiosmtplib.SMTP, host: str, sender: str, recipients: list[str], raw: bytes
) -> TransactionResult:
    """MAIL, one RCPT per recipient, DATA: per-recipient replies. Never raises."""
    prepared = downgrade.prepare(
        sender,
        recipients,
        raw,
        smtputf8=smtp.supports_extension("smtputf8"),
        eightbitmime=smtp.supports_extension("8bitmime"),
        host=host,
    )
    replies = {r: Reply(None, "5.6.7", why, host) for r, why in prepared.refused.items()}
    todo = [r for r in recipients if r not in replies]
    result = TransactionResult(replies)
    if not todo:
        return result
    encoding = "utf-8" if prepared.utf8 else "ascii"
    stage = "send MAIL FROM to"
    try:
        try:
            await smtp.mail(sender, options=prepared.mail_options, encoding=encoding)
        except aiosmtplib.SMTPResponseException as exc:
            replies.update({r: Reply.from_smtp(exc.code, exc.message, host) for r in todo})
            await _rset(smtp, result)
            return result
        accepted: list[str] = []
        stage = "send RCPT TO to"
        for rcpt in todo:
            try:
                await smtp.rcpt(rcpt, encoding=encoding)
                accepted.append(rcpt)
            except aiosmtplib.SMTPRecipientRefused as exc:
                replies[rcpt] = Reply.from_smtp(exc.code, exc.message, host)
        if not accepted:
            await _rset(smtp, result)
            return result
        stage = "send DATA to"
        result.data_sent = True
        try:
            response = await smtp.data(prepared.raw)
        except aiosmtplib.SMTPResponseException as exc:
            replies.update({r: Reply.from_smtp(exc.code, exc.message, host) for r in accepted})
            await _rset(smtp, result)
            return result
        replies.update({r: Reply.from_smtp(response.code, response.message, host) for r in accepted})
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        result.broken = True
        lost = network_error(exc, host, stage)
        for rcpt in todo:
            replies.setdefault(rcpt, lost)
    return result


async def _rset(smtp: aiosmtplib.SMTP, result: TransactionResult) -> None:
    try:
        await smtp.rset()
    except (aiosmtplib.SMTPException, OSError, TimeoutError):
        result.broken = True


def _close(smtp: aiosmtplib.SMTP) -> None:
    try:
        smtp.close()
    except Exception:  # noqa: BLE001, S110  (closing a dead connection cannot fail usefully)
        pass


# --- smarthost ---------------------------------------------------------------------------
class SmarthostTransport:
    """Keeps connections to one smarthost open and reuses them across messages."""

    # An idle connection is checked with NOOP before reuse after this long, and closed
    # after IDLE_CLOSE (smarthosts drop idle clients after a few minutes).
    IDLE_CHECK = 5.0
    IDLE_CLOSE = 60.0

    def __init__(self, spec: UpstreamSpec, timeout: float) -> None:
        self.spec = spec
        self.timeout = timeout
        self.label = spec.label
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self.connections_opened = 0

    async def _connect(self) -> aiosmtplib.SMTP:
        implicit = self.spec.kind == "smtps"
        smtp = aiosmtplib.SMTP(
            hostname=self.spec.host,
            port=self.spec.port,
            timeout=self.timeout,
            use_tls=implicit,
            start_tls=False if implicit else (True if self.spec.require_tls else None),
            validate_certs=self.spec.verify,
            username=self.spec.username or None,
            password=self.spec.password or None,
            local_hostname=settings.RELAY_HOSTNAME,
        )
        await smtp.connect()
        self.connections_opened += 1
        return smtp

    async def _acquire(self) -> tuple[aiosmtplib.SMTP, bool]:
        now = time.monotonic()
        while self._idle:
            smtp, since = self._idle.pop()
            if not smtp.is_connected or now - since > self.IDLE_CLOSE:
                _close(smtp)
                continue
            if now - since > self.IDLE_CHECK:
                try:
                    await smtp.noop(timeout=min(self.timeout, 10))
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    _close(smtp)
                    continue
            return smtp, True
        return await self._connect(), False

    async def send(self, sender: str, recipients: list[str], raw: bytes) -> dict[str, Reply]:
        for _ in range(2):
            try:
                smtp, reused = await self._acquire()
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                reply = network_error(exc, self.label, "connect to")
                return {r: reply for r in recipients}
            result = await smtp_transaction(smtp, self.label, sender, recipients, raw)
            if not result.broken:
                self._idle.append((smtp, time.monotonic()))
                return result.replies
            _close(smtp)
            # A kept-open connection the server dropped while idle: try once more on a
            # fresh one, unless the message may already have been accepted.
            if not (reused and not result.data_sent):
                return result.replies
        return result.replies

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for smtp, _ in idle:
            try:
                await smtp.quit(timeout=5)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                _close(smtp)


# --- maildir -----------------------------------------------------------------------------
class MaildirTransport:
    """Development upstream: each delivered message becomes a file in a Maildir."""

    def __init__(self, spec: UpstreamSpec) -> None:
        self.path = spec.path
        self.label = spec.label

    def _write(self, sender: str, recipients: list[str], raw: bytes) -> str:
        box = mailbox.Maildir(self.path, create=True)
        trace = f"Return-Path: <{sender}>\n".encode()
        trace += b"".join(f"Delivered-To: {r}\n".encode() for r in recipients)
        return box.add(trace + raw.replace(b"\r\n", b"\n"))

    async def send(self, sender: str, recipients: list[str], raw: bytes) -> dict[str, Reply]:
        try:
            key = await asyncio.to_thread(self._write, sender, recipients, raw)
        except OSError as exc:
            reply = Reply(None, "4.3.0", f"Could not write to {self.label}: {exc}", self.label)
        else:
            reply = Reply(250, "2.0.0", f"Delivered to {self.label} as {key}", self.label)
        return {r: reply for r in recipients}

    async def close(self) -> None:
        return None


def build_transport(url: str | None = None, timeout: float | None = None) -> Transport:
    spec = parse_upstream(url if url is not None else settings.RELAY_UPSTREAM)
    timeout = float(timeout if timeout is not None else settings.DELIVERY_TIMEOUT)
    if spec.kind == "maildir":
        return MaildirTransport(spec)
    if spec.kind == "mx":
        from relay.delivery.upstreams.mx import MxTransport

        return MxTransport(spec, timeout)
    return SmarthostTransport(spec, timeout)
