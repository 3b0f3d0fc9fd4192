"""Development upstream: delivered mail becomes files in a local Maildir.

The folder may exist already, empty (a mount point, a folder made by a deployment tool):
its `cur/`, `new/` and `tmp/` are made inside it. A path that is a file (or whose `cur/`,
`new/` or `tmp/` is one) is refused with a reply that says so: the worker will not start
with it, and a message met while it is so stays queued (4.3.0) until it is fixed.
"""

from __future__ import annotations

import asyncio
import mailbox
import os
from collections.abc import Callable
from pathlib import Path

from relay.delivery.upstreams.reply import Reply
from relay.delivery.upstreams.spec import UpstreamSpec
from relay.dsn_params import DsnRequest
from relay.models import FailReason

SUBFOLDERS = ("tmp", "new", "cur")


def maildir_problem(path: str) -> str | None:
    """Why `path` cannot be a Maildir (a file stands where a folder must), or None."""
    for folder in (Path(path), *(Path(path) / sub for sub in SUBFOLDERS)):
        if folder.exists() and not folder.is_dir():
            return (f"{folder} is a file, not a directory: point RELAY_UPSTREAM=maildir: at "
                    "a directory (empty or a Maildir) or remove the file")
    return None


class MaildirNotUsable(OSError):
    """The path cannot be a Maildir; the text says why."""


def open_maildir(path: str) -> mailbox.Maildir:
    """The Maildir at `path`, its folders made if need be (`mailbox.Maildir(create=True)`
    makes them only when `path` itself does not exist)."""
    problem = maildir_problem(path)
    if problem:
        raise MaildirNotUsable(problem)
    os.makedirs(path, mode=0o700, exist_ok=True)
    for sub in SUBFOLDERS:
        os.makedirs(os.path.join(path, sub), mode=0o700, exist_ok=True)
    return mailbox.Maildir(path, create=False)


class MaildirTransport:
    """Development upstream: each delivered message becomes a file in a Maildir."""

    def __init__(self, spec: UpstreamSpec) -> None:
        self.path = spec.path
        self.label = spec.label

    def _write(self, sender: str, recipients: list[str], raw: bytes,
               sign: Callable[[bytes], bytes] | None) -> str:
        if sign is not None:
            raw = sign(raw)  # a Maildir takes any bytes: nothing to downgrade first
        box = open_maildir(self.path)
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
