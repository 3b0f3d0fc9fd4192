"""Pure "may this pass?" judgments of MAIL FROM, RCPT TO and DATA.

Each check takes a frozen snapshot of the session (who logged in, the envelope so far)
and the address or the message bytes, and gives a `Reject` (the reply, and the kind and
reason of the relay event to record) or lets it pass. No socket, no database, no state:
the handler records the event and sends the reply; tests call these directly.

The hourly limit is not judged here: it needs the count of the last hour, which the
handler reads (and may have to reload) before asking `over_hourly_limit()` for the reply.
"""

from __future__ import annotations

from dataclasses import dataclass

from accounts.senders import SenderPolicy
from relay.models import EventKind
from relay.smtp import replies
from relay.smtp.accept import HeaderSummary, address_problem, check_sender, parse_headers, printable
from smtpplus.addresses import split_address


@dataclass(frozen=True, slots=True)
class SessionSnapshot:
    """What the checks know of a session: its login and its envelope so far."""

    authenticated: bool
    username: str
    policy: SenderPolicy | None
    hourly_limit: int | None
    mail_from: str = ""
    recipients: int = 0
    smtputf8: bool = False


@dataclass(frozen=True, slots=True)
class Reject:
    """A refusal: the reply for the client, and the relay event that records it."""

    reply: str
    kind: str
    reason: str = ""
    address: str = ""


def mail_from(session: SessionSnapshot, address: str, smtputf8: bool) -> Reject | None:
    """MAIL FROM before the hourly limit: logged in, and a well-formed address."""
    if not session.authenticated or session.policy is None:
        return Reject(replies.AUTH_REQUIRED, EventKind.AUTH_REQUIRED, address=printable(address))
    problem = address_problem(address, smtputf8)
    if problem:
        return Reject(replies.bad_sender_reply(problem), EventKind.BAD_ADDRESS,
                      f"sender address: {problem}", printable(address))
    return None


def envelope_sender(session: SessionSnapshot, address: str) -> Reject | None:
    """MAIL FROM after the hourly limit: the address is authorized for the user."""
    assert session.policy is not None  # mail_from() let only a logged-in session pass
    decision = check_sender(session.policy, address)
    if not decision.allowed:
        return Reject(replies.refusal_reply(decision, address, session.username),
                      EventKind.SENDER_REJECTED, decision.reason, address)
    return None


def over_hourly_limit(session: SessionSnapshot, address: str) -> Reject:
    """The refusal of a user that has used up its hourly limit."""
    return Reject(replies.RATE_LIMITED, EventKind.RATE_LIMITED,
                  f"{session.hourly_limit} messages per hour", address)


def recipient(session: SessionSnapshot, address: str, max_recipients: int) -> Reject | None:
    """RCPT TO: a well-formed address, and room for one more recipient."""
    problem = address_problem(address, session.smtputf8)
    if problem:
        return Reject(replies.bad_recipient_reply(problem), EventKind.BAD_ADDRESS,
                      f"recipient address: {problem}", printable(address))
    if max_recipients and session.recipients >= max_recipients:
        return Reject(replies.TOO_MANY_RECIPIENTS, EventKind.TOO_MANY_RECIPIENTS,
                      f"more than {max_recipients} recipients", session.mail_from)
    return None


def message(session: SessionSnapshot, raw: bytes) -> Reject | HeaderSummary:
    """DATA: a header block that reads one way only, a From:, and every author address
    (From:, Sender:) authorized for the user. Gives the headers when it may pass."""
    assert session.policy is not None
    headers = parse_headers(raw)
    if headers.unreadable is not None:
        # Refused rather than guessed: another reader could see another author.
        problem = headers.unreadable
        what = f"{problem.header} header" if problem.header else "header block"
        return Reject(replies.unreadable_header_reply(problem), EventKind.FROM_REJECTED,
                      f"{what} cannot be read unambiguously: {problem.why}")
    if not headers.from_addresses:
        # RFC 5322 requires a From: header, and without one there is no author
        # address to check against the user's authorized senders.
        return Reject(replies.NO_FROM_HEADER, EventKind.FROM_REJECTED, "no From: header",
                      session.mail_from)
    for header, address in headers.authors:
        if split_address(address) is None:
            return Reject(replies.unparsable_header_reply(address, header),
                          EventKind.FROM_REJECTED, f"{header} header is not a valid address",
                          printable(address, 998))
        decision = check_sender(session.policy, address)
        if not decision.allowed:
            return Reject(replies.refusal_reply(decision, address, session.username, header),
                          EventKind.FROM_REJECTED, f"{header} {decision.reason}",
                          printable(address, 998))
    return headers
