"""Why a delivery did not happen: a `FailReason` and the upstream's reply, read in plain
language for the message page, the troubleshooter and the alerts alike."""

from __future__ import annotations

import re

from relay.explain.reading import Reading
from relay.models import FailReason

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

_RETRIES = "SMTP+ retries on its own until the message expires."
CONNECTION_LOST = Reading(
    "connection_lost",
    "connection to the upstream server lost",
    "The next mail server closed or lost the connection in the middle of the transaction.",
    f"{_RETRIES} If it keeps happening, the server may be overloaded or a firewall may "
    "cut long connections.",
)
TIMEOUT = Reading(
    "timeout",
    "upstream server did not answer in time",
    "The next mail server did not answer within DELIVERY_TIMEOUT seconds.",
    f"{_RETRIES} If it lasts, check that the server is up and not overloaded, and that no "
    "firewall silently drops SMTP+'s connections.",
)
TLS_FAILED = Reading(
    "tls_failed",
    "encryption with the upstream server failed",
    "SMTP+ could not set up TLS with the next mail server: the handshake failed, its "
    "certificate could not be verified (expired, self-signed or for another name), or it "
    "offers no STARTTLS while RELAY_UPSTREAM requires TLS.",
    "Ask the operator of SMTP+ to check the upstream's certificate and the tls= and "
    "verify= options of RELAY_UPSTREAM.",
)
DNS_FAILED = Reading(
    "dns_failed",
    "DNS lookup failed",
    "SMTP+ could not look up the mail servers of the recipient's domain (the DNS query "
    "timed out or no name server answered).",
    f"{_RETRIES} If it lasts, check the DNS resolver of the SMTP+ machine and the "
    "recipient domain's name servers.",
)
NO_ADDRESS = Reading(
    "no_address",
    "recipient's mail servers have no address",
    "The mail servers (MX) the recipient's domain names have no IP address in DNS.",
    f"{_RETRIES} The recipient domain's DNS must be fixed by its owner; reach the "
    "recipient another way meanwhile.",
)
NULL_MX = Reading(
    "null_mx",
    "recipient domain accepts no mail",
    "The recipient's domain says in DNS that it accepts no email (null MX, RFC 7505).",
    "Check the part of the address after the @ for typos; if it is right, the domain "
    "receives no email: reach the recipient another way.",
)
NO_SUCH_DOMAIN = Reading(
    "no_such_domain",
    "recipient domain does not exist",
    "The recipient's domain does not exist in DNS, or is not a valid domain name.",
    DOMAIN_UNKNOWN.what_to_do,
)
SMTPUTF8 = Reading(
    "smtputf8",
    "upstream cannot take this non-ASCII address",
    "The address has non-ASCII characters and the next mail server does not support "
    "SMTPUTF8, so the message cannot be handed to it for this recipient.",
    "Use the recipient's ASCII address if it has one, or an upstream that supports "
    "SMTPUTF8.",
)
UNDELIVERABLE = Reading(
    "undeliverable",
    "message content no longer stored",
    "The message's content was removed (retention policy) before it could be delivered.",
    "Send the message again.",
)
WRITE_FAILED = Reading(
    "write_failed",
    "could not write to the Maildir",
    "SMTP+ could not write the message into the Maildir of RELAY_UPSTREAM (disk full, "
    "permissions or a missing folder).",
    f"{_RETRIES} Ask the operator of SMTP+ to check that folder's free space and "
    "permissions.",
)
INTERNAL_ERROR = Reading(
    "internal_error",
    "internal error in SMTP+",
    "Delivery stopped on an unexpected error inside SMTP+; the try counts and is retried.",
    f"{_RETRIES} If it lasts, the operator finds the error in the delivery worker's log.",
)
CANCELLED = Reading(
    "cancelled",
    "cancelled by an admin",
    "An admin stopped delivery to this recipient (console or manage.py queue).",
    "Nothing to do; retry the recipient if it should get the message after all.",
)

# What SMTP+ knows without an upstream reply to read.
_BY_REASON: dict[str, Reading] = {
    FailReason.CONNECT_FAILED: UNREACHABLE,
    FailReason.CONNECTION_LOST: CONNECTION_LOST,
    FailReason.TIMEOUT: TIMEOUT,
    FailReason.TLS_FAILED: TLS_FAILED,
    FailReason.DNS_FAILED: DNS_FAILED,
    FailReason.NO_ADDRESS: NO_ADDRESS,
    FailReason.NULL_MX: NULL_MX,
    FailReason.NO_SUCH_DOMAIN: NO_SUCH_DOMAIN,
    FailReason.SMTPUTF8: SMTPUTF8,
    FailReason.UNDELIVERABLE: UNDELIVERABLE,
    FailReason.WRITE_FAILED: WRITE_FAILED,
    FailReason.INTERNAL_ERROR: INTERNAL_ERROR,
    FailReason.CANCELLED: CANCELLED,
}
SESSION_REFUSED = Reading(
    "session_refused",
    "upstream server refused the session",
    "The next mail server refused SMTP+ before any recipient was sent (at its greeting, "
    "STARTTLS or the login).",
    f"{_RETRIES} The reply text says why; if it is about the login, ask the operator of "
    "SMTP+ to check the credentials in RELAY_UPSTREAM.",
)
# Where the upstream answered, its reply says more than the reason; this is the reading
# when the reply has nothing more to say.
_REPLY_REASONS: dict[str, Reading] = {
    FailReason.REJECTED: REJECTED,
    FailReason.TEMPORARY: TEMPORARY,
    FailReason.SESSION_REFUSED: SESSION_REFUSED,
}

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
    """The reading of one upstream reply. A reply without a code only comes from a row
    stored before reasons were recorded: then the text is all there is to read."""
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


def explain_attempt(
    code: int | None, enhanced: str = "", text: str = "", reason: str = ""
) -> Reading:
    """Why one attempt did not deliver: its `FailReason`, and the upstream's reply
    (code, enhanced code, text) where the upstream answered."""
    known = _BY_REASON.get(reason)
    if known is not None:
        return known
    reading = _classify(code, (enhanced or "").strip(), (text or "").strip())
    return _REPLY_REASONS.get(reason, reading) if reading is UNKNOWN else reading


def explain_delivery(
    code: int | None,
    enhanced: str = "",
    text: str = "",
    fail_reason: str = "",
    *,
    last_reason: str = "",
    delayed_minutes: int | None = None,
) -> Reading:
    """Why a recipient failed, expired, was cancelled or is still waiting, in plain
    language: `fail_reason` why it stopped, `last_reason` and the reply of its last try."""
    own = "" if fail_reason in (FailReason.EXPIRED, FailReason.CANCELLED) else fail_reason
    last = explain_attempt(code, enhanced, text, last_reason or own)
    if fail_reason == FailReason.CANCELLED:
        return CANCELLED
    if fail_reason == FailReason.EXPIRED:
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
