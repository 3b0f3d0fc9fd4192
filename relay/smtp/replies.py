"""SMTP reply texts of the protocol layer, and enhanced status codes for every reply.

The relay advertises ENHANCEDSTATUSCODES (RFC 2034), which promises a status code in the
text of every 2xx, 4xx and 5xx reply except the greeting and the answer to HELO/EHLO.
The relay's own replies carry one; aiosmtpd's built-in replies ("250 OK", "503 Error:
need RCPT command", …) get one here, chosen from the reply code (RFC 3463).
"""

from __future__ import annotations

AUTH_LINE_TOO_LONG = "500 5.5.6 Authentication Exchange line is too long"
AUTH_ABORTED = "501 5.7.0 Authentication aborted"
BAD_BASE64 = "501 5.5.2 Cannot decode base64"
BAD_AUTH_PARAMETER = (
    "501 5.5.4 Syntax error in the AUTH parameter: use AUTH=<> or an xtext-encoded address"
)
UNTERMINATED_SENDER = "501 5.1.7 Bad sender address syntax: the path has no closing '>'"
UNTERMINATED_RECIPIENT = "501 5.1.3 Bad recipient address syntax: the path has no closing '>'"
TLS_ALREADY_ACTIVE = "503 5.5.1 TLS already active"
LINE_TOO_LONG = (
    "500 5.5.2 Line too long: a line of the message is over 998 characters; wrap long "
    "lines or send the body quoted-printable or base64 encoded"
)

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
