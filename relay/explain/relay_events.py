"""Why the relay itself refused a client or a message (relay events), in plain language:
the matching row of the troubleshooting table the product grew from."""

from __future__ import annotations

from relay.explain.delivery import TOO_LARGE
from relay.explain.reading import Reading
from relay.models import EventKind

_CONSOLE_USER = "Log into the SMTP+ console and open the SMTP+ user's page."

WRONG_CREDENTIALS = Reading(
    "wrong_credentials",
    "SMTP+ user name or password not correct",
    "The user name and password of the SMTP+ user are not correct.",
    "Log into the SMTP+ console, retrieve the SMTP+ credentials for that user, and "
    "re-enter them in the email client or application that is sending the messages.",
)
USER_DISABLED = Reading(
    "user_disabled",
    "SMTP+ user is disabled",
    "A client logged in with the credentials of a disabled SMTP+ user.",
    "Enable the SMTP+ user in the console if it should send, or remove its credentials "
    "from the client.",
)
RATE_LIMITED = Reading(
    "rate_limited",
    "hourly sending limit reached",
    "The SMTP+ user reached its hourly message limit; further messages were refused with "
    "a temporary error (451 4.7.1) and the client should send them again later.",
    "Raise or remove the hourly limit on the SMTP+ user's page, or spread the sending "
    "over time.",
)
TLS_REQUIRED = Reading(
    "tls_required",
    "client logged in without encryption",
    "The client tried to log in before starting TLS, which SMTP+ requires.",
    "Turn on STARTTLS (or SSL/TLS on the implicit-TLS port) in the client's settings.",
)
AUTH_REQUIRED = Reading(
    "auth_required",
    "client sent without logging in",
    "The client tried to send without logging in.",
    "Turn on SMTP authentication in the client and enter the SMTP+ user's credentials.",
)
SUPPRESSED = Reading(
    "suppressed",
    "recipient is on the suppression list",
    "SMTP+ refused the recipient because an earlier message to it failed permanently for "
    "a mailbox-level reason (the mailbox or its domain does not exist, or the mailbox is "
    "disabled), or an admin suppressed it; sending again would only hurt the account's "
    "reputation with the mailbox providers.",
    "Remove the address from your lists. If it works again (a typo fixed, a mailbox "
    "re-opened), remove it from the suppression list in the console.",
)
OTHER_RELAY = Reading(
    "relay_rejected",
    "message refused by SMTP+",
    "SMTP+ refused the message.",
    "Open the relay events page in the console for the details.",
)

# Matches the reasons relay.handler records for a header block it refuses to guess at.
UNREADABLE_HEADER_REASON = "cannot be read unambiguously"
UNREADABLE_HEADER = Reading(
    "header_unreadable",
    "unreadable From: header",
    "SMTP+ refused the message because its From:/Sender: header (or its header block) can "
    "be read in more than one way: mail readers and DMARC could see another author than "
    "the one SMTP+ would check, e.g. an address written as the display name "
    "(sales@example.com <other@example.net>), two From: headers or a malformed line.",
    "Make the application write one From: header with plain addresses such as "
    "name@your-authorized-domain or \"Name\" <name@your-authorized-domain>; the relay "
    "events page shows the header and what is wrong with it.",
)


def _second_level(domain: str) -> str:
    d = domain.lower().rstrip(".")
    return d[4:] if d.startswith("www.") and d.count(".") >= 2 else d


def sender_rejected(address: str, smtp_username: str = "", header: bool = False) -> Reading:
    """The seed's two rows for an unauthorized sender: authorize the domain or the address."""
    where = "From: header address" if header else "sender address"
    addr = address.strip().strip("<>")
    domain = addr.rpartition("@")[2] if "@" in addr else ""
    user = f" “{smtp_username}”" if smtp_username else ""
    if domain:
        base = _second_level(domain)
        www = (
            f" (the second-level domain: enter {base}, not {domain}, since mail is usually "
            "sent from the second-level domain)"
            if base != domain.lower().rstrip(".")
            else ""
        )
        todo = (
            f"{_CONSOLE_USER} Review the details of the SMTP+ user{user} and either "
            f"authorize the domain {base}{www}, or authorize only the address {addr}. "
            "Either is enough."
        )
    else:
        todo = (
            f"{_CONSOLE_USER} Review the details of the SMTP+ user{user} and authorize the "
            "sender's domain or address."
        )
    return Reading(
        "sender_rejected",
        "sender not authorized",
        f"The {where} {addr or '(empty)'} is not one of the SMTP+ user's authorized "
        "emails, and its domain is not one of the authorized domains.",
        todo,
    )


def explain_relay_event(kind: str, reason: str = "", address: str = "", username: str = "") -> Reading:
    """Reading of a relay event (`kind`: an EventKind value)."""
    if kind in (EventKind.AUTH_FAILED, EventKind.AUTH_COOLOFF):
        if "disabled" in reason.lower():
            return USER_DISABLED
        return WRONG_CREDENTIALS
    if kind == EventKind.FROM_REJECTED and UNREADABLE_HEADER_REASON in reason:
        return UNREADABLE_HEADER
    if kind in (EventKind.SENDER_REJECTED, EventKind.FROM_REJECTED):
        return sender_rejected(address, username, header=(kind == EventKind.FROM_REJECTED))
    if kind == EventKind.RATE_LIMITED:
        return RATE_LIMITED
    if kind == EventKind.TLS_REQUIRED:
        return TLS_REQUIRED
    if kind == EventKind.AUTH_REQUIRED:
        return AUTH_REQUIRED
    if kind == EventKind.SUPPRESSED:
        return SUPPRESSED
    if kind == EventKind.SIZE_EXCEEDED:
        return Reading(
            TOO_LARGE.key, TOO_LARGE.summary,
            "The message is larger than SMTP+ accepts.",
            "Send a smaller message, or ask the operator to raise RELAY_MAX_MESSAGE_SIZE.",
        )
    return OTHER_RELAY


def login_failures(count: int, minutes: int, who: str) -> Reading:
    return Reading(
        "login_failures",
        "repeated failed logins",
        f"{count} failed logins {who} within {minutes} minutes.",
        WRONG_CREDENTIALS.what_to_do
        + " If you do not recognise the client, someone may be guessing passwords: reset "
        "the password of the SMTP+ user.",
    )
