"""The relay's reply contract: every reply text a client can get from SMTP+, in one place.

The handler, the protocol class, the guard and the session watch only pick a reply from
here; none of them writes a reply text of its own. The contract (DESIGN.md) in short:

| situation                                   | reply                                        | event kind          |
|---------------------------------------------|----------------------------------------------|---------------------|
| greeting                                    | `220 <hostname> ESMTP SMTP+ ready`           |                     |
| EHLO                                        | aiosmtpd's lines + EXTRA_EHLO_LINES          |                     |
| STARTTLS accepted / TLS already on          | `220 2.0.0` / `503 5.5.1`                    |                     |
| AUTH ok                                     | AUTH_OK `235 2.7.0`                          |                     |
| bad, unknown or disabled credentials        | AUTH_FAILED `535 5.7.8` (one text for all)   | auth_failed         |
| too many failed logins; AUTH or connection  | cooloff_reply() `421 4.7.0` and close        | auth_cooloff        |
|   during the cool-off                       |                                              |                     |
| AUTH without TLS where TLS is required      | TLS_REQUIRED `538 5.7.11`                    | tls_required        |
| AUTH exchange: empty, unsplittable, bad     | `501 5.5.2` / `501 5.7.0` / `500 5.5.6`      |                     |
|   base64, aborted, line too long            |                                              |                     |
| too many connections from one address       | TOO_MANY_CONNECTIONS `421 4.7.0`             | conn_limit          |
| MAIL without AUTH                           | AUTH_REQUIRED `530 5.7.0`                    | auth_required       |
| MAIL FROM:<> (null sender)                  | NULL_SENDER `550 5.7.1`                      | sender_rejected     |
| bad sender / recipient address              | bad_sender_reply() `553 5.1.7` /             | bad_address         |
|                                             | bad_recipient_reply() `553 5.1.3`            |                     |
| path without its closing ">", bad AUTH=     | `501 5.1.7` / `501 5.1.3` / `501 5.5.4`      |                     |
| envelope sender not authorized              | not_authorized_reply() `550 5.7.1`           | sender_rejected     |
| From:/Sender: not authorized                | not_authorized_reply(header=) `550 5.7.1`    | from_rejected       |
| sender authorized, but its domain is not a  | unverified_domain_reply() `550 5.7.1`        | sender_rejected /   |
|   verified sending domain of the account    |   (header= for From:/Sender:)                | from_rejected       |
| sender address authorized, not confirmed    | unconfirmed_address_reply() `550 5.7.1`      | sender_rejected /   |
|                                             |                                              | from_rejected       |
| no From:, unparsable or unreadable header   | NO_FROM_HEADER, unparsable_header_reply(),   | from_rejected       |
|                                             | unreadable_header_reply() `550 5.6.0`        |                     |
| too many recipients                         | TOO_MANY_RECIPIENTS `452 4.5.3`              | too_many_rcpts      |
| recipient on the account's suppression list | relay.suppressions.refusal_reply() `550 5.1.1`| suppressed         |
| bad DSN parameter (RET, ENVID, NOTIFY,      | relay.dsn_params `501 5.5.4` naming it       |                     |
|   ORCPT)                                    |                                              |                     |
| over the size limit (SIZE= or actual)       | SIZE_EXCEEDED `552 5.3.4`                    | size_exceeded       |
| a line over 998 characters                  | LINE_TOO_LONG `500 5.5.2`                    | bad_message         |
| user over its hourly limit                  | RATE_LIMITED `451 4.7.1`                     | rate_limited        |
| session revoked by an admin change          | revoked_reply() `421 4.7.0` and close        | session_revoked     |
| storing the message failed                  | STORE_FAILED `451 4.3.0` (never a 250)       | store_failed        |
| accepted                                    | queued_reply() `250 2.0.0 Ok: queued as <id>`|                     |
| unexpected exception                        | INTERNAL_ERROR `451 4.3.0` (no internals)    |                     |

The relay advertises ENHANCEDSTATUSCODES (RFC 2034), which promises a status code in the
text of every 2xx, 4xx and 5xx reply except the greeting and the answer to HELO/EHLO.
The relay's own replies carry one; aiosmtpd's built-in replies ("250 OK", "503 Error:
need RCPT command", …) get one here, chosen from the reply code (RFC 3463).
"""

from __future__ import annotations

from accounts.senders import (
    SUBDOMAINS_NOT_OWNED,
    UNCONFIRMED_ADDRESS,
    UNVERIFIED_DOMAIN,
    Decision,
)
from relay.models import EventKind
from relay.smtp.accept import printable
from relay.smtp.headerblock import Unreadable
from smtpplus.addresses import domain_to_unicode

GREETING_IDENT = "ESMTP SMTP+ ready"

# --- AUTH -----------------------------------------------------------------------------
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_FAILED = "535 5.7.8 Authentication credentials invalid"
AUTH_REQUIRED = "530 5.7.0 Authentication required"
TLS_REQUIRED = "538 5.7.11 Encryption required for requested authentication mechanism"
EMPTY_AUTH_PLAIN = "501 5.5.2 Empty AUTH PLAIN response: send the user name and the password"
UNSPLITTABLE_AUTH_PLAIN = "501 5.5.2 Cannot split the AUTH PLAIN value"
AUTH_LINE_TOO_LONG = "500 5.5.6 Authentication Exchange line is too long"
AUTH_ABORTED = "501 5.7.0 Authentication aborted"
BAD_BASE64 = "501 5.5.2 Cannot decode base64"

# --- connections and TLS --------------------------------------------------------------
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections from your address, try again later"
READY_FOR_TLS = "220 2.0.0 Ready to start TLS"
# Extensions aiosmtpd's EHLO reply does not list although the relay supports them; they
# go before its last line ("250 HELP").
EXTRA_EHLO_LINES = (b"250-PIPELINING", b"250-ENHANCEDSTATUSCODES", b"250-DSN")
TLS_ALREADY_ACTIVE = "503 5.5.1 TLS already active"

# --- envelope -------------------------------------------------------------------------
MAIL_OK = "250 2.1.0 Ok"
RCPT_OK = "250 2.1.5 Ok"
BAD_AUTH_PARAMETER = (
    "501 5.5.4 Syntax error in the AUTH parameter: use AUTH=<> or an xtext-encoded address"
)
UNTERMINATED_SENDER = "501 5.1.7 Bad sender address syntax: the path has no closing '>'"
UNTERMINATED_RECIPIENT = "501 5.1.3 Bad recipient address syntax: the path has no closing '>'"
NULL_SENDER = (
    "550 5.7.1 The null sender <> cannot be used to submit mail: "
    "send from an address authorized for your SMTP+ user"
)
WHAT_TO_AUTHORIZE = "authorize the address or its domain for this user in the SMTP+ console"
TOO_MANY_RECIPIENTS = "452 4.5.3 Too many recipients"
RATE_LIMITED = "451 4.7.1 Sending rate limit exceeded, try again later"

# --- message --------------------------------------------------------------------------
SIZE_EXCEEDED = "552 5.3.4 Message size exceeds fixed maximum message size"
LINE_TOO_LONG = (
    "500 5.5.2 Line too long: a line of the message is over 998 characters; wrap long "
    "lines or send the body quoted-printable or base64 encoded"
)
NO_FROM_HEADER = (
    "550 5.6.0 The message has no From: header: add one with an address authorized for "
    "this SMTP+ user"
)
STORE_FAILED = "451 4.3.0 Could not store the message, try again later"
INTERNAL_ERROR = "451 4.3.0 Internal error, try again later"

# aiosmtpd's own replies that the relay contract words differently, with the event each
# one records (kind and reason).
REWRITES = {
    b"552 Error: message size exceeds fixed maximum message size":
        (SIZE_EXCEEDED.encode(), EventKind.SIZE_EXCEEDED, "over RELAY_MAX_MESSAGE_SIZE"),
    b"552 Error: Too much mail data":
        (SIZE_EXCEEDED.encode(), EventKind.SIZE_EXCEEDED, "over RELAY_MAX_MESSAGE_SIZE"),
    b"500 Line too long (see RFC5321 4.5.3.1.6)":
        (LINE_TOO_LONG.encode(), EventKind.BAD_MESSAGE,
         "a line of the message is over 998 characters (RFC 5322 2.1.1)"),
}


def greeting(hostname: str) -> str:
    return f"220 {hostname} {GREETING_IDENT}"


def cooloff_reply(seconds: float) -> str:
    minutes = max(1, int(seconds + 59) // 60)
    return f"421 4.7.0 Too many failed logins from your address, try again in {minutes} minutes"


def bad_sender_reply(problem: str) -> str:
    return f"553 5.1.7 Sender address rejected: {problem}"


def bad_recipient_reply(problem: str) -> str:
    return f"553 5.1.3 Recipient address rejected: {problem}"


def not_authorized_reply(address: str, username: str, header: str = "") -> str:
    where = f" in the {header} header" if header else ""
    return (
        f"550 5.7.1 Sender <{printable(address)}>{where} is not authorized for "
        f"SMTP+ user {username}: {WHAT_TO_AUTHORIZE}"
    )


def unverified_domain_reply(address: str, username: str, domain: str, header: str = "") -> str:
    where = f" in the {header} header" if header else ""
    return (
        f"550 5.7.1 Sender <{printable(address)}>{where} is authorized for SMTP+ user "
        f"{username}, but its domain {printable(domain_to_unicode(domain))} is not a verified "
        "sending domain of this account: verify it in the console"
    )


def subdomains_not_owned_reply(address: str, username: str, parent: str, header: str = "") -> str:
    where = f" in the {header} header" if header else ""
    shown = printable(domain_to_unicode(parent))
    return (
        f"550 5.7.1 Sender <{printable(address)}>{where} is authorized for SMTP+ user "
        f"{username} as a subdomain of {shown}, but the sending domain {shown} does not "
        "include subdomains: turn that on for it in the console, or add this domain as a "
        "sending domain of its own"
    )


def unconfirmed_address_reply(address: str, username: str, header: str = "") -> str:
    where = f" in the {header} header" if header else ""
    return (
        f"550 5.7.1 Sender <{printable(address)}>{where} is authorized for SMTP+ user "
        f"{username}, but the address is not confirmed yet: follow the link mailed to it "
        "(or resend it from the console)"
    )


def refusal_reply(decision: Decision, address: str, username: str, header: str = "") -> str:
    """The reply for a sender `SenderPolicy.check()` refused: not authorized, or
    authorized but at an unverified domain or not confirmed."""
    if decision.refusal == UNVERIFIED_DOMAIN:
        return unverified_domain_reply(address, username, decision.domain, header)
    if decision.refusal == SUBDOMAINS_NOT_OWNED:
        return subdomains_not_owned_reply(address, username, decision.domain, header)
    if decision.refusal == UNCONFIRMED_ADDRESS:
        return unconfirmed_address_reply(address, username, header)
    return not_authorized_reply(address, username, header)


def unparsable_header_reply(value: str, header: str) -> str:
    # Not "authorize it": no authorization can make an unreadable header pass.
    return (
        f"550 5.6.0 The {header} header {printable(value, 200)!r} does not contain a "
        f"valid email address: use a plain address such as name@your-authorized-domain"
    )


def unreadable_header_reply(problem: Unreadable) -> str:
    """The reply to a header block that cannot be read unambiguously: which header (or
    line) and what is wrong with it."""
    text = printable(problem.text, 120)
    if not problem.header:
        return (
            f"550 5.6.0 The message's header block is malformed: {problem.why}: {text!r}; "
            "end every header line with CRLF and the header block with an empty line"
        )
    return (
        f"550 5.6.0 The {problem.header} header {text!r} cannot be read unambiguously: "
        f"{problem.why}; use plain addresses such as name@your-authorized-domain or "
        f'"Name" <name@your-authorized-domain>'
    )


def revoked_reply(username: str, why: str) -> str:
    return f"421 4.7.0 SMTP+ user {username} {why} since this connection logged in, closing"


def queued_reply(queue_id: str) -> str:
    return f"250 2.0.0 Ok: queued as {queue_id}"


# The enhanced code for a reply code that has none in its text (RFC 3463 classes).
_ENHANCED = {
    b"220": b"2.0.0", b"221": b"2.0.0", b"250": b"2.0.0", b"252": b"2.5.0",
    b"421": b"4.3.0", b"451": b"4.3.0", b"452": b"4.3.1", b"454": b"4.7.0",
    b"500": b"5.5.2", b"501": b"5.5.4", b"502": b"5.5.1", b"503": b"5.5.1",
    b"504": b"5.5.4", b"530": b"5.7.0", b"535": b"5.7.8", b"552": b"5.3.4",
    b"553": b"5.1.3", b"554": b"5.7.0", b"555": b"5.5.4",
}


def with_enhanced_code(reply: bytes) -> bytes:
    """`reply` with an enhanced status code after the reply code if its text lacks one
    (3xx replies are left alone, as RFC 2034 says)."""
    if len(reply) < 4 or reply[:1] not in b"245" or reply[4:5].isdigit():
        return reply
    code = reply[:3]
    enhanced = _ENHANCED.get(code) or reply[:1] + b".0.0"
    return code + reply[3:4] + enhanced + b" " + reply[4:]
