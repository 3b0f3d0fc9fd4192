"""The send API's error answers: the SMTP reply the relay gives in the same situation,
as JSON. `message` is the reply's text (without its codes), `smtp_reply` the whole
reply; the HTTP status and the machine `code` follow from the relay event's kind."""

from __future__ import annotations

from ninja import Schema

from accounts.api.auth import ApiError
from relay.models import EventKind
from relay.smtp.checks import Reject

# Event kind → (HTTP status, machine code) of a refused message.
_BY_KIND: dict[str, tuple[int, str]] = {
    EventKind.SENDER_REJECTED: (403, "sender_not_authorized"),
    EventKind.FROM_REJECTED: (403, "from_not_authorized"),
    EventKind.BAD_ADDRESS: (422, "bad_address"),
    EventKind.TOO_MANY_RECIPIENTS: (422, "too_many_recipients"),
    EventKind.SUPPRESSED: (422, "recipient_suppressed"),
    EventKind.SIZE_EXCEEDED: (413, "message_too_large"),
    EventKind.BAD_MESSAGE: (422, "bad_message"),
    EventKind.RATE_LIMITED: (429, "hourly_limit"),
    EventKind.STORE_FAILED: (503, "store_failed"),
}
# Seconds after which a user over its hourly limit may try again: the relay re-reads the
# count of the last hour once a minute.
HOURLY_RETRY_AFTER = 60


class SendErrorOut(Schema):
    code: str
    message: str
    smtp_reply: str | None = None


def reply_text(reply: str) -> str:
    """"550 5.7.1 Sender <a@b> is not …" → "Sender <a@b> is not …"."""
    parts = reply.split(" ", 2)
    if len(parts) == 3 and parts[0].isdigit() and parts[1][:1].isdigit():
        return parts[2]
    return reply.split(" ", 1)[-1] if reply[:3].isdigit() else reply


def refusal(status: int, code: str, reply: str, detail: str = "",
            headers: dict[str, str] | None = None) -> ApiError:
    """An error answer that carries an SMTP reply (or a sentence, when it has no codes)."""
    text = reply_text(reply) if reply[:3].isdigit() else reply
    message = f"{text}: {detail}" if detail else text
    extra = {"smtp_reply": reply} if reply[:3].isdigit() else {}
    return ApiError(status, code, message, headers=headers, **extra)


def rejected(reject: Reject) -> ApiError:
    """The answer to a message the relay's checks refuse."""
    status, code = _BY_KIND.get(reject.kind, (422, "refused"))
    if reject.kind == EventKind.FROM_REJECTED and " 5.7.1 " not in reject.reply[:10]:
        status, code = 422, "bad_header"  # no From:, or one that cannot be read
    headers = {"Retry-After": str(HOURLY_RETRY_AFTER)} if status == 429 else None
    return refusal(status, code, reject.reply, headers=headers)
