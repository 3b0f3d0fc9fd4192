"""Development upstream: delivered mail becomes files in a local Maildir."""

from __future__ import annotations

import asyncio
import mailbox
from collections.abc import Callable

from relay.delivery.upstreams.reply import Reply
from relay.delivery.upstreams.spec import UpstreamSpec
from relay.dsn_params import DsnRequest
from relay.models import FailReason


class MaildirTransport:
    """Development upstream: each delivered message becomes a file in a Maildir."""

    def __init__(self, spec: UpstreamSpec) -> None:
        self.path = spec.path
        self.label = spec.label

    def _write(self, sender: str, recipients: list[str], raw: bytes,
               sign: Callable[[bytes], bytes] | None) -> str:
        if sign is not None:
            raw = sign(raw)  # a Maildir takes any bytes: nothing to downgrade first
        box = mailbox.Maildir(self.path, create=True)
        trace = f"Return-Path: <{sender}>\n".encode()
        trace += b"".join(f"Delivered-To: {r}\n".encode() for r in recipients)
        return box.add(trace + raw.replace(b"\r\n", b"\n"))

    async def send(
        self, sender: str, recipients: list[str], raw: bytes, dsn: DsnRequest | None = None,
        *, sign: Callable[[bytes], bytes] | None = None,
    ) -> dict[str, Reply]:
        try:
            key = await asyncio.to_thread(self._write, sender, recipients, raw, sign)
        except OSError as exc:
            reply = Reply(
                None, "4.3.0", f"Could not write to {self.label}: {exc}", self.label,
                reason=FailReason.WRITE_FAILED,
            )
        else:
            reply = Reply(250, "2.0.0", f"Delivered to {self.label} as {key}", self.label)
        return {r: reply for r in recipients}

    async def close(self) -> None:
        return None
