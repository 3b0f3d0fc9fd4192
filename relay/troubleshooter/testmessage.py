"""Send a test message as an SMTP+ user, recording the whole SMTP conversation.

The console connects to its own relay like any client would, with the user's real
credentials (decrypted here, on the server; never sent to the browser), so the
transcript tells the relay's side of a problem from the client's side. Every AUTH
payload and anything that contains the password is masked before it is recorded.
"""

from __future__ import annotations

import base64
import email.policy
import smtplib
import socket
import ssl
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from django.utils import timezone

from accounts import audit
from accounts.audit import Actor
from accounts.models import SmtpUser
from relay.listen import Endpoint, Listener, advertised_listeners

MASK = "********"
TIMEOUT = 15.0
_WILDCARDS = {"", "0.0.0.0", "::", "*"}  # noqa: S104 - recognised, not bound


def endpoints(listeners: list[Listener] | None = None) -> list[Endpoint]:
    """Where the console can reach the relay: one endpoint per listening port, wildcard
    addresses replaced by the loopback address of the same family."""
    if listeners is None:
        listeners = advertised_listeners()[0]
    found: dict[int, Endpoint] = {}
    for x in sorted(listeners, key=lambda x: (x.port, x.host)):
        host = x.host
        if host in _WILDCARDS:
            host = "::1" if host == "::" else "127.0.0.1"
        found.setdefault(x.port, Endpoint(host, x.port, x.tls))
    return list(found.values())


def default_endpoint(options: list[Endpoint]) -> Endpoint | None:
    for port in (587, 2525):
        for e in options:
            if e.port == port:
                return e
    return next((e for e in options if e.tls != "implicit"), options[0] if options else None)


@dataclass
class Line:
    who: str  # "client", "server" or "note"
    text: str
    ms: int  # since the start of the conversation


@dataclass
class TestOutcome:
    ok: bool
    summary: str
    endpoint: Endpoint
    transcript: list[Line] = field(default_factory=list)
    queue_id: str = ""


class RecordingSMTP(smtplib.SMTP):
    """smtplib's client, with every line sent and received recorded (secrets masked)."""

    def __init__(self, secrets: list[str], timeout: float = TIMEOUT) -> None:
        self.transcript: list[Line] = []
        self._secrets = [s for s in secrets if s]
        self._started = time.monotonic()
        self._after_334 = False
        self._expect_body = False
        super().__init__(timeout=timeout)

    def note(self, text: str) -> None:
        self._record("note", text)

    def _record(self, who: str, text: str) -> None:
        for secret in self._secrets:
            text = text.replace(secret, MASK)
        ms = int((time.monotonic() - self._started) * 1000)
        self.transcript.append(Line(who, text, ms))

    def send(self, s: str | bytes) -> None:  # type: ignore[override]
        data = s.decode("utf-8", "replace") if isinstance(s, bytes) else s
        if self._expect_body:
            self._expect_body = False
            head = data.split("\r\n\r\n", 1)[0]
            for header in head.split("\r\n")[:12]:
                self._record("client", header)
            self._record("client", f"… message body ({len(s)} bytes in all)")
            self._record("client", ".")
        else:
            for line in data.split("\r\n"):
                if not line:
                    continue
                if self._after_334:
                    line = MASK
                elif line[:5].upper() == "AUTH ":
                    parts = line.split(" ", 2)
                    line = " ".join(parts[:2] + ([MASK] if len(parts) > 2 else []))
                self._record("client", line)
        super().send(s)

    def getreply(self) -> tuple[int, bytes]:
        code, message = super().getreply()
        lines = message.decode("utf-8", "replace").split("\n") or [""]
        for i, line in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            self._record("server", f"{code}{sep}{line}")
        self._after_334 = code == 334
        self._expect_body = code == 354
        return code, message


def _secret_forms(username: str, password: str) -> list[str]:
    raw = [password, f"\0{username}\0{password}", f"{username}\0{password}"]
    forms = [password] + [base64.b64encode(r.encode()).decode() for r in raw]
    return sorted(set(forms), key=len, reverse=True)


def build_message(user: SmtpUser, sender: str, recipient: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = f"SMTP+ test message for {user.username}"
    msg["Date"] = format_datetime(timezone.now())
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    msg.set_content(
        f"This is a test message sent from the SMTP+ console as SMTP+ user {user.username}.\n"
        "If it arrived, the relay accepts and delivers this user's mail.\n"
    )
    return msg


def _reply(exc_or_pair: tuple[int, bytes | str]) -> str:
    code, text = exc_or_pair
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {' '.join(text.splitlines())}"


def converse(user: SmtpUser, sender: str, recipient: str, endpoint: Endpoint,
             timeout: float = TIMEOUT) -> TestOutcome:
    """Log in as `user` at `endpoint`, send one message, and record everything."""
    password = user.get_password()
    client = RecordingSMTP(_secret_forms(user.username, password), timeout=timeout)
    outcome = TestOutcome(False, "", endpoint, client.transcript)
    try:
        client.note(f"Connecting to {endpoint.host}:{endpoint.port} ({endpoint.mode})")
        context = ssl.create_default_context()
        # The console talks to its own relay, by an address the certificate does not name.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        # smtplib names the server from this in STARTTLS.
        client._host = endpoint.host  # type: ignore[attr-defined]
        if endpoint.tls == "implicit":
            client.sock = context.wrap_socket(
                socket.create_connection((endpoint.host, endpoint.port), timeout),
                server_hostname=endpoint.host)
            client.file = None
            client.note("TLS started (certificate not verified)")
            code, greeting = client.getreply()
        else:
            code, greeting = client.connect(endpoint.host, endpoint.port)
        if code != 220:
            return _fail(outcome, "The relay did not greet us", (code, greeting))
        client.ehlo("smtpplus-console.invalid")
        if endpoint.tls != "implicit" and client.has_extn("starttls"):
            code, text = client.starttls(context=context)
            if code != 220:
                return _fail(outcome, "STARTTLS failed", (code, text))
            client.note("TLS started (certificate not verified)")
            client.ehlo("smtpplus-console.invalid")
        try:
            client.login(user.username, password)
        except smtplib.SMTPAuthenticationError as exc:
            return _fail(outcome, "Login refused", (exc.smtp_code, exc.smtp_error))
        except smtplib.SMTPNotSupportedError:
            return _fail(outcome, "The relay did not offer AUTH", (0, b""))
        options = ["SMTPUTF8"] if not (sender + recipient).isascii() else []
        code, text = client.mail(sender, options)
        if code != 250:
            return _fail(outcome, "Sender refused", (code, text))
        code, text = client.rcpt(recipient)
        if code not in (250, 251):
            return _fail(outcome, "Recipient refused", (code, text))
        policy = email.policy.SMTPUTF8 if options else email.policy.SMTP
        message = build_message(user, sender, recipient).as_bytes(policy=policy)
        code, text = client.data(message)
        if code != 250:
            return _fail(outcome, "Message refused", (code, text))
        outcome.ok = True
        outcome.summary = f"Accepted: {_reply((code, text))}"
        outcome.queue_id = text.decode("utf-8", "replace").rsplit(" ", 1)[-1]
        client.quit()
    except smtplib.SMTPDataError as exc:
        return _fail(outcome, "Message refused", (exc.smtp_code, exc.smtp_error))
    except smtplib.SMTPServerDisconnected as exc:
        return _fail(outcome, f"The relay closed the connection ({exc})", None)
    except (OSError, smtplib.SMTPException) as exc:
        client.note(f"{type(exc).__name__}: {exc}")
        if not outcome.summary:
            outcome.summary = (f"Could not talk to the relay at {endpoint.host}:{endpoint.port}: "
                               f"{exc}")
    finally:
        client.close()
    return outcome


def _fail(outcome: TestOutcome, what: str, reply: tuple[int, bytes | str] | None) -> TestOutcome:
    outcome.ok = False
    outcome.summary = f"{what}: {_reply(reply)}" if reply and reply[0] else what
    return outcome


def send_test_message(
    user: SmtpUser,
    sender: str,
    recipient: str,
    endpoint: Endpoint,
    actor: Actor | None = None,
) -> TestOutcome:
    """Send a test message as `user` and write an audit row saying so and how it went."""
    outcome = converse(user, sender, recipient, endpoint)
    audit.record(
        "smtpuser.test_message", account=user.account, actor=actor, target=user,
        target_label=user.username,
        details={"sender": sender, "recipient": recipient, "port": endpoint.port,
                 "ok": outcome.ok, "outcome": outcome.summary[:300]},
    )
    return outcome
