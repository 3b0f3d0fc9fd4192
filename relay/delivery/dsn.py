"""Building a delivery status notification (RFC 3464) about one message.

    multipart/report; report-type=delivery-status
      text/plain                   each recipient, what happened in plain words (the
                                   explainer the console and alerts use) and the reply
      message/delivery-status      Reporting-MTA, Arrival-Date; per recipient
                                   Final-Recipient, Original-Recipient, Action, Status,
                                   Remote-MTA, Diagnostic-Code, Last-Attempt-Date
      text/rfc822-headers          the original's header block (message/rfc822, the
                                   whole message, when the client asked RET=FULL)

Pure: the caller (`relay.delivery.notices`) reads the rows and stores the result as a
message for the queue, sent with the null sender like every DSN.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage, Message
from email.utils import format_datetime, make_msgid

from relay.explain import explain_delivery

SUBJECTS = {
    "failed": "Undelivered Mail Returned to Sender",
    "delayed": "Delayed Mail (still being retried)",
    "delivered": "Successful Mail Delivery Report",
    "relayed": "Successful Mail Delivery Report",
}
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class Line:
    """One recipient of the report."""

    address: str
    action: str  # failed / delayed / delivered / relayed
    orcpt: str = ""  # "rfc822;addr" as the client gave it
    code: int | None = None
    enhanced: str = ""
    text: str = ""
    fail_reason: str = ""
    last_reason: str = ""
    remote_mta: str = ""
    last_attempt: datetime | None = None

    @property
    def status(self) -> str:
        """RFC 3463 status of the line: the reply's own, or the class of its code."""
        if self.action in ("delivered", "relayed"):
            return self.enhanced if self.enhanced.startswith("2.") else "2.0.0"
        if self.action == "delayed":
            return self.enhanced if self.enhanced.startswith("4.") else "4.0.0"
        if self.fail_reason == "expired" and not self.enhanced.startswith("5."):
            return "4.4.7"  # delivery time expired
        if self.enhanced[:2] in ("4.", "5."):
            return self.enhanced if self.enhanced.startswith("5.") else "5" + self.enhanced[1:]
        return "5.0.0"


@dataclass(frozen=True)
class Original:
    """What the report says of the message it is about."""

    queue_id: str
    envelope_from: str
    created: datetime
    raw: bytes | None
    ret: str = ""
    envid: str = ""


def _human_part(original: Original, lines: list[Line], action: str, hostname: str) -> str:
    intro = {
        "failed": "Your message could not be delivered to one or more recipients. "
                  "SMTP+ will not try again for them.",
        "delayed": "Your message has not been delivered yet to one or more recipients. "
                   "SMTP+ keeps trying; you need do nothing now, and will hear again only "
                   "if it gives up.",
        "delivered": "Your message was delivered to the recipients below.",
        "relayed": "Your message was delivered to the recipients below.",
    }[action]
    out = [f"This is the mail system at {hostname} (SMTP+).", "", intro, "",
           f"Message {original.queue_id}, received "
           f"{original.created:%Y-%m-%d %H:%M:%S %Z}".rstrip(), ""]
    for line in lines:
        out.append(f"<{line.address}>:")
        if line.action in ("failed", "delayed"):
            delayed = 0 if line.action == "delayed" else None
            reading = explain_delivery(
                line.code, line.enhanced, line.text, line.fail_reason,
                last_reason=line.last_reason, delayed_minutes=delayed,
            )
            out.append(f"    {reading.explanation}")
            if line.code is not None or line.text:
                who = f"The server {line.remote_mta}" if line.remote_mta else "The reply"
                reply = " ".join(str(p) for p in (line.code, line.enhanced, line.text) if p)
                out.append(f"    {who} said: {reply}")
            out.append(f"    What to do: {reading.what_to_do}")
        else:
            out.append(f"    Delivered ({line.remote_mta or 'next server'}).")
        out.append("")
    return "\n".join(out)


def _status_part(original: Original, lines: list[Line], hostname: str) -> Message:
    blocks: list[Message | str] = []
    head = Message()
    head["Reporting-MTA"] = f"dns; {hostname}"
    if original.envid:
        head["Original-Envelope-Id"] = original.envid
    head["X-SMTPPlus-Queue-ID"] = original.queue_id
    head["Arrival-Date"] = format_datetime(original.created)
    blocks.append(head)
    for line in lines:
        block = Message()
        if line.orcpt:
            block["Original-Recipient"] = line.orcpt
        block["Final-Recipient"] = f"rfc822; {line.address}"
        block["Action"] = line.action
        block["Status"] = line.status
        host = _remote_host(line.remote_mta)
        if host and line.code is not None:
            block["Remote-MTA"] = f"dns; {host}"
        if line.code is not None:
            reply = " ".join(str(p) for p in (line.code, line.enhanced, line.text) if p)
            block["Diagnostic-Code"] = f"smtp; {reply}"
        if line.last_attempt is not None:
            block["Last-Attempt-Date"] = format_datetime(line.last_attempt)
        blocks.append(block)
    part = Message()
    part["Content-Type"] = "message/delivery-status"
    part.set_payload(blocks)
    return part


def _remote_host(label: str) -> str:
    """The host of an upstream label: "mx.example.net[192.0.2.1]:25" → the name,
    "192.0.2.1:25" and "[2001:db8::1]:25" → the address."""
    if label.startswith("["):
        return label[1:].split("]", 1)[0]
    if "[" in label:
        return label.split("[", 1)[0]
    return label.rsplit(":", 1)[0] if label.count(":") == 1 else label


def _original_part(original: Original) -> Message | None:
    raw = original.raw
    if raw is None:
        return None
    if original.ret == "FULL":
        full = Message()
        full["Content-Type"] = "message/rfc822"
        full["Content-Description"] = "Undelivered Message"
        inner: list[Message | str] = [email.message_from_bytes(raw, policy=email.policy.compat32)]
        full.set_payload(inner)
        return full
    match = _HEADER_END.search(raw)
    head = raw[: match.start()] if match else raw
    part = Message()
    part["Content-Type"] = "text/rfc822-headers"
    part["Content-Description"] = "Undelivered Message Headers"
    if head.isascii():
        part["Content-Transfer-Encoding"] = "7bit"
        part.set_payload(head.decode("ascii") + "\r\n")
    else:
        part.set_payload(head + b"\r\n", charset="utf-8")  # base64: 8-bit headers
    return part


def build(
    original: Original, lines: list[Line], *, to: str, from_: str, hostname: str,
    date: datetime,
) -> tuple[bytes, str, str]:
    """The report as bytes (CRLF), its Subject and its Message-ID."""
    action = lines[0].action
    subject = SUBJECTS[action]
    message_id = make_msgid("dsn", domain=hostname)
    report = EmailMessage(policy=email.policy.SMTP)
    report["From"] = from_
    report["To"] = to
    report["Subject"] = subject
    report["Date"] = format_datetime(date)
    report["Message-ID"] = message_id
    report["Auto-Submitted"] = "auto-replied"
    report.make_mixed()
    report.set_type("multipart/report")
    report.set_param("report-type", "delivery-status")
    human = EmailMessage(policy=email.policy.SMTP)
    human.set_content(_human_part(original, lines, action, hostname))
    human["Content-Description"] = "Notification"
    report.attach(human)
    report.attach(_status_part(original, lines, hostname))  # type: ignore[arg-type]
    attached = _original_part(original)
    if attached is not None:
        report.attach(attached)  # type: ignore[arg-type]
    return report.as_bytes(policy=email.policy.SMTP), subject, message_id
