"""Smarthost delivery: one SMTP transaction, and connections kept open across messages.

`smtp_transaction` is shared with the MX transport: MAIL, one RCPT per recipient, DATA,
after downgrading the message to what the server supports.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiosmtplib
from django.conf import settings

from relay.delivery.upstreams import downgrade
from relay.delivery.upstreams.reply import Reply, TransportError, network_error
from relay.delivery.upstreams.spec import UpstreamSpec
from relay.dsn_params import DsnRequest
from relay.models import FailReason

# dkimpy signs about 10 MB/s: a larger message is signed on a thread, so that the other
# transactions and lease renewals go on meanwhile.
SIGN_INLINE_MAX = 256 * 1024


@dataclass
class TransactionResult:
    replies: dict[str, Reply]
    broken: bool = False  # the connection is unusable afterwards
    data_sent: bool = False


async def smtp_transaction(
    smtp: aiosmtplib.SMTP, host: str, sender: str, recipients: list[str], raw: bytes,
    dsn: DsnRequest | None = None,
    *, sign: Callable[[bytes], bytes] | None = None,
) -> TransactionResult:
    """MAIL, one RCPT per recipient, DATA: per-recipient replies. Never raises. The DSN
    request goes along when the server offers the DSN extension (RFC 3461). `sign` (DKIM)
    is applied to the message as downgraded for this server."""
    prepared = downgrade.prepare(
        sender,
        recipients,
        raw,
        smtputf8=smtp.supports_extension("smtputf8"),
        eightbitmime=smtp.supports_extension("8bitmime"),
        host=host,
    )
    replies = {
        r: Reply(None, "5.6.7", why, host, reason=FailReason.SMTPUTF8)
        for r, why in prepared.refused.items()
    }
    todo = [r for r in recipients if r not in replies]
    result = TransactionResult(replies)
    if not todo:
        return result
    encoding = "utf-8" if prepared.utf8 else "ascii"
    if not (dsn and smtp.supports_extension("dsn")):
        dsn = None
    stage = "send MAIL FROM to"
    try:
        try:
            mail_options = prepared.mail_options + (dsn.mail_options() if dsn else [])
            await smtp.mail(sender, options=mail_options, encoding=encoding)
        except aiosmtplib.SMTPResponseException as exc:
            replies.update({r: Reply.from_smtp(exc.code, exc.message, host) for r in todo})
            await _rset(smtp, result)
            return result
        accepted: list[str] = []
        stage = "send RCPT TO to"
        for rcpt in todo:
            try:
                await smtp.rcpt(rcpt, options=dsn.rcpt_options(rcpt) if dsn else None,
                                encoding=encoding)
                accepted.append(rcpt)
            except aiosmtplib.SMTPRecipientRefused as exc:
                replies[rcpt] = Reply.from_smtp(exc.code, exc.message, host)
        if not accepted:
            await _rset(smtp, result)
            return result
        stage = "send DATA to"
        data = prepared.raw
        if sign is not None:
            inline = len(data) <= SIGN_INLINE_MAX
            data = sign(data) if inline else await asyncio.to_thread(sign, data)
        result.data_sent = True
        try:
            response = await smtp.data(data)
        except aiosmtplib.SMTPResponseException as exc:
            replies.update({r: Reply.from_smtp(exc.code, exc.message, host) for r in accepted})
            await _rset(smtp, result)
            return result
        replies.update({r: Reply.from_smtp(response.code, response.message, host,
                                           dsn_passed=dsn is not None) for r in accepted})
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
        result.broken = True
        lost = network_error(exc, host, stage, FailReason.CONNECTION_LOST)
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

    async def _connect(self) -> aiosmtplib.SMTP:
        implicit = self.spec.kind == "smtps"
        smtp = aiosmtplib.SMTP(
            hostname=self.spec.host,
            port=self.spec.port,
            timeout=self.timeout,
            use_tls=implicit,
            # STARTTLS whenever offered; `?tls=require` is checked below, before the login,
            # so that a server without it is told apart from one that failed the handshake.
            start_tls=False if implicit else None,
            validate_certs=self.spec.verify,
            local_hostname=settings.RELAY_HOSTNAME,
        )
        await smtp.connect()
        if self.spec.require_tls and smtp.get_transport_info("sslcontext") is None:
            _close(smtp)
            raise TransportError(
                FailReason.TLS_FAILED,
                "the server offers no STARTTLS and RELAY_UPSTREAM requires TLS (tls=require)",
            )
        if self.spec.username:
            try:
                await smtp.login(self.spec.username, self.spec.password)
            except BaseException:
                _close(smtp)
                raise
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

    async def send(
        self, sender: str, recipients: list[str], raw: bytes, dsn: DsnRequest | None = None,
        *, sign: Callable[[bytes], bytes] | None = None,
    ) -> dict[str, Reply]:
        for _ in range(2):
            try:
                smtp, reused = await self._acquire()
            except (aiosmtplib.SMTPException, OSError, TimeoutError, TransportError) as exc:
                reply = network_error(exc, self.label, "connect to")
                return {r: reply for r in recipients}
            result = await smtp_transaction(smtp, self.label, sender, recipients, raw, dsn,
                                            sign=sign)
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
