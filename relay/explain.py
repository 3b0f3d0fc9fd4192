"""Plain-language readings of why a message was not sent, and what to do about it.

Two sources: the upstream's reply to a delivery attempt (code, enhanced status code, text;
or a connection error with no code), and the relay's own rejections (relay events), whose
advice is the matching row of the troubleshooting table the product grew from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relay.models import EventKind


@dataclass(frozen=True)
class Reading:
    key: str
    # Short, lower case: it ends alert subjects ("… (Acme) — recipient mailbox does not exist").
    summary: str
    explanation: str
    what_to_do: str


# The seed's note: a closed port means the relay never sees the message.
PORT_NOTE = (
    "A client that cannot reach SMTP+ at all (for example because the port is closed on "
    "its network) produces no event, so no alert can be sent for it. If an application "
    "says it cannot connect, try another port (for example 2525 instead of 25) and ask "
    "the server's administrator which outbound ports are open."
)

_CHECK_ADDRESS = (
    "Check the recipient address for typos. If it is correct, the mailbox was closed: "
    "remove the address from your lists."
)

MAILBOX_UNKNOWN = Reading(
    "mailbox_unknown",
    "recipient mailbox does not exist",
    "The recipient's mail server says this mailbox does not exist.",
    _CHECK_ADDRESS,
)
DOMAIN_UNKNOWN = Reading(
    "domain_unknown",
    "recipient domain does not exist or accepts no mail",
    "The recipient's domain does not exist, or it publishes no mail server (null MX).",
    "Check the part of the address after the @ for typos (gmial.com, example.con …).",
)
MAILBOX_FULL = Reading(
    "mailbox_full",
    "recipient mailbox is full",
    "The recipient's mailbox is over its quota.",
    "Nothing to fix on your side; the recipient must free space. Send again later or "
    "reach them another way.",
)
TOO_LARGE = Reading(
    "too_large",
    "message too large",
    "The message is larger than the recipient's server accepts.",
    "Send a smaller message: link to large files instead of attaching them.",
)
POLICY = Reading(
    "policy",
    "rejected as spam or by policy",
    "The recipient's server refused the message as spam or because of its policy "
    "(sender reputation, SPF/DKIM/DMARC, content, a block list).",
    "Check that the sender's domain publishes SPF and DKIM records that include this "
    "relay, and a DMARC policy; check the content and whether the relay's IP address is "
    "on a block list. The reply text often names the reason or a page to read.",
)
RELAY_DENIED = Reading(
    "relay_denied",
    "upstream refuses to relay",
    "The upstream server does not accept mail from SMTP+ for this destination.",
    "Ask the operator of SMTP+ to check the upstream settings (RELAY_UPSTREAM, its "
    "credentials and the IP addresses it accepts).",
)
UPSTREAM_AUTH = Reading(
    "upstream_auth",
    "SMTP+ could not log in to the upstream",
    "The upstream server refused SMTP+'s own login.",
    "Ask the operator of SMTP+ to check the user name and password in RELAY_UPSTREAM.",
)
BAD_ADDRESS = Reading(
    "bad_address",
    "recipient address is invalid",
    "The recipient's server says the address is not a valid email address.",
    _CHECK_ADDRESS,
)
UNREACHABLE = Reading(
    "unreachable",
    "upstream server unreachable",
    "SMTP+ could not connect to the next mail server (refused, timed out or not found).",
    "SMTP+ retries on its own. If it lasts, check that the upstream server is up and "
    "reachable from the SMTP+ machine (firewall, DNS, port).",
)
TEMPORARY = Reading(
    "temporary",
    "temporary failure at the recipient's server",
    "The recipient's server answered with a temporary error.",
    "Nothing to do yet: SMTP+ retries on its own until the message expires.",
)
REJECTED = Reading(
    "rejected",
    "rejected by the recipient's server",
    "The recipient's server refused the message permanently.",
    "Read the reply text below: it usually says why. Fix the cause and send the message "
    "again.",
)
UNKNOWN = Reading(
    "unknown",
    "delivery failed",
    "The message could not be delivered.",
    "Open the message in the console to see every attempt and reply.",
)

_RULES: list[tuple[Reading, re.Pattern[str]]] = [
    (RELAY_DENIED, re.compile(r"relay(ing)? (access )?(denied|not permitted)|not permitted to relay")),
    (MAILBOX_FULL, re.compile(
        r"^[45]\.2\.2\b|mailbox (is )?full|over ?quota|quota exceeded|insufficient storage"
    )),
    (TOO_LARGE, re.compile(r"^[45]\.(3\.4|2\.3)\b|too (large|big)|size exceeds|message size")),
    (DOMAIN_UNKNOWN, re.compile(
        r"^5\.1\.(2|10)\b|null mx|domain (not found|does not exist)|host (or domain name )?not "
        r"found|no mx|nxdomain|does not accept mail|no such domain"
    )),
    (MAILBOX_UNKNOWN, re.compile(
        r"^5\.1\.1\b|user unknown|unknown user|no such (user|mailbox|recipient)|mailbox "
        r"(unavailable|not found|does not exist)|account .*does not exist|invalid recipient"
        r"|unknown recipient|undeliverable address"
    )),
    (BAD_ADDRESS, re.compile(
        r"^5\.1\.3\b|^5\.5\.[24]\b|bad (recipient|destination) (address|mailbox)|syntax"
    )),
    (POLICY, re.compile(
        r"^5\.7\.|spam|blocked|block ?list|black ?list|policy|reputation|dmarc|spf|dkim|"
        r"\brbl\b|spamhaus|content rejected"
    )),
]

_UNREACHABLE_TEXT = re.compile(
    r"connection refused|timed out|timeout|unreachable|could not connect|cannot connect|"
    r"connection (reset|closed|lost)|disconnect|name or service not known|"
    r"temporary failure in name|no route|network|dns|ssl|tls handshake|eof",
    re.IGNORECASE,
)
_ENHANCED_IN_TEXT = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")


def _classify(code: int | None, enhanced: str, text: str) -> Reading:
    """The reading of one upstream reply (or of a connection error when code is None)."""
    low = text.lower()
    if not enhanced:
        m = _ENHANCED_IN_TEXT.match(text)
        enhanced = m.group(1) if m else ""
    if code is None and not enhanced:
        if _UNREACHABLE_TEXT.search(text):
            return UNREACHABLE
        if not text:
            return UNKNOWN
    if code in (530, 535) or enhanced == "5.7.8" or (
        enhanced.startswith("5.7.") and "authentication" in low
    ):
        return UPSTREAM_AUTH
    probe = f"{enhanced} {low}".strip()
    for reading, pattern in _RULES:
        if pattern.search(probe):
            return reading
    if code == 552:
        return TOO_LARGE
    if code is not None and 400 <= code < 500:
        return UNREACHABLE if code == 421 or _UNREACHABLE_TEXT.search(text) else TEMPORARY
    if code is not None and 500 <= code < 600:
        return REJECTED
    return UNREACHABLE if _UNREACHABLE_TEXT.search(text) else UNKNOWN


def explain_delivery(
    code: int | None,
    enhanced: str = "",
    text: str = "",
    fail_reason: str = "",
    *,
    delayed_minutes: int | None = None,
) -> Reading:
    """Why a recipient failed, expired or is still waiting, in plain language."""
    last = _classify(code, (enhanced or "").strip(), (text or "").strip())
    if fail_reason == "expired":
        last_part = f" The last attempt said: {last.explanation}" if (code or text) else ""
        return Reading(
            "expired",
            "gave up after retrying",
            "Every attempt failed temporarily and SMTP+ gave up when the message reached "
            "its maximum time in the queue." + last_part,
            last.what_to_do
            if last not in (UNKNOWN, TEMPORARY)
            else "Check the recipient address and whether the recipient's server is up, "
            "then send the message again.",
        )
    if delayed_minutes is not None:
        last_part = f" The last attempt said: {last.explanation}" if (code or text) else (
            " It has not been tried yet or no attempt has finished."
        )
        return Reading(
            "delayed",
            last.summary if last is not UNKNOWN else "not tried yet",
            f"The message is still in the queue after {delayed_minutes} minutes." + last_part,
            "SMTP+ keeps retrying until the message expires. " + (
                last.what_to_do if last not in (UNKNOWN, TEMPORARY) else
                "If many messages wait, check that the upstream server is reachable."
            ),
        )
    return last


# --- Relay-side events -------------------------------------------------------------------

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
