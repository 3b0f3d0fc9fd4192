"""Producing the troubleshooter's situations for real: messages and logins over SMTP
against a relay, a delivery run, and a check run on what the relay recorded."""

from __future__ import annotations

import smtplib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
from django.utils import timezone

from accounts.models import SmtpUser
from relay.delivery.worker import deliver_due


def body(sender: str, to: str = "someone@example.net", size: int = 0) -> bytes:
    filler = ("x" * 98 + "\r\n") * (size // 100)
    return f"From: {sender}\r\nTo: {to}\r\nSubject: Hello\r\n\r\n{filler}Hi.\r\n".encode()


@contextmanager
def logged_in(relay, user: SmtpUser, password: str):
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(user.username, password)
        yield smtp


def relay_sees_changes(relay) -> None:
    """The relay's next check of logged-in users and kept logins, now instead of within
    a second: a change applies to new logins once it has run."""
    relay.call(relay.server.session_watch.check)


def send(relay, user, password, sender, to="someone@example.net", header_from=None, size=0):
    """One message over SMTP; returns the (code, reply) of the step that ended it."""
    with logged_in(relay, user, password) as smtp:
        code, reply = smtp.mail(sender)
        if code != 250:
            return code, reply
        code, reply = smtp.rcpt(to)
        if code != 250:
            return code, reply
        try:
            return smtp.data(body(header_from or sender, to, size))
        except smtplib.SMTPDataError as exc:
            return exc.smtp_code, exc.smtp_error


def failed_login(relay, username: str, password: str = "wrong password") -> None:
    """One failed AUTH PLAIN (smtplib's login() would try LOGIN as well: two failures)."""
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = username, password
        with pytest.raises(smtplib.SMTPAuthenticationError):
            smtp.auth("PLAIN", smtp.auth_plain)


def deliver(upstream) -> None:
    """Run the delivery worker once, on its own thread: a browser test earlier in the same
    run leaves Playwright's event loop on the main thread, where asyncio.run() refuses."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(deliver_due, upstream=upstream.url()).result()


def run(check, relay, user: SmtpUser):
    relay.flush()
    user.refresh_from_db()
    return check(user, timezone.now())


def text(result) -> str:
    return "\n".join(result.evidence)
