"""Alert channels: email (Django's email backend, never our own relay) and signed webhooks.

Contract (every channel):

    channel.notify(content) -> None

* Sends one alert (`alerts.content.AlertContent`) to the channel's one target.
* Returns normally only when the receiving side accepted it.
* On failure raises `ChannelError` whose message says what went wrong in words an admin
  can act on (the remote reply included), with `permanent=True` when trying again cannot
  help (an address refused, a 4xx from the webhook) so the sender stops retrying.
* Never raises another alert and never touches the relay's queue: a failure is recorded on
  the notification by the caller (alerts.sending), which also owns retries and backoff.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import smtplib
import socket
from http.client import HTTPConnection, HTTPException, HTTPSConnection
from urllib.parse import unquote, urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from alerts.content import AlertContent

SIGNATURE_HEADER = "X-SMTPPlus-Signature"


class ChannelError(Exception):
    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class BaseChannel:
    def __init__(self, target: str) -> None:
        self.target = target

    def notify(self, content: AlertContent) -> None:
        raise NotImplementedError


class EmailChannel(BaseChannel):
    def notify(self, content: AlertContent) -> None:
        msg = EmailMultiAlternatives(
            subject=content.subject,
            body=content.text,
            from_email=settings.ALERTS_FROM_EMAIL,
            to=[self.target],
            headers={
                # RFC 3834: tells auto-responders and our own users' filters not to reply.
                "Auto-Submitted": "auto-generated",
                "X-Auto-Response-Suppress": "All",
            },
            connection=get_connection(fail_silently=False),
        )
        msg.attach_alternative(content.html, "text/html")
        try:
            sent = msg.send()
        except smtplib.SMTPRecipientsRefused as exc:
            replies = "; ".join(
                f"{code} {resp.decode(errors='replace') if isinstance(resp, bytes) else resp}"
                for code, resp in exc.recipients.values()
            )
            raise ChannelError(f"the mail server refused {self.target}: {replies}", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
            raise ChannelError(
                f"the mail server answered {exc.smtp_code} {text}", permanent=500 <= exc.smtp_code < 600
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise ChannelError(f"could not send the email: {exc.__class__.__name__}: {exc}") from exc
        if sent != 1:
            raise ChannelError("the email backend did not send the message")


def sign(body: bytes, secret: str) -> str:
    """The value of the X-SMTPPlus-Signature header for `body`."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def encode_payload(payload: dict[str, object]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode("utf-8")


def _allow_private() -> bool:
    return bool(settings.ALERTS_WEBHOOK_ALLOW_PRIVATE)


# IPv6 addresses that are another spelling of an IPv4 address (its last 32 bits): a
# connection to one reaches, or is translated to, that IPv4 address.
_IPV4_SPELLINGS = (
    ipaddress.IPv6Network("::ffff:0:0/96"),  # IPv4-mapped (RFC 4291)
    ipaddress.IPv6Network("::ffff:0:0:0/96"),  # IPv4-translated (RFC 2765)
    ipaddress.IPv6Network("64:ff9b::/96"),  # NAT64 well-known prefix (RFC 6052)
    ipaddress.IPv6Network("::/96"),  # IPv4-compatible, deprecated (RFC 4291); :: and ::1 too
)
# The NAT64 local-use prefix (RFC 8215) is translated the way the operator chose (the
# IPv4 address may sit at any of the RFC 6052 positions): never public.
NAT64_LOCAL_USE = ipaddress.IPv6Network("64:ff9b:1::/48")
TEREDO = ipaddress.IPv6Network("2001::/32")
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: its last 32 bits for the IPv4
    spellings above and ISATAP interface identifiers (RFC 5214), bits 16-47 for 6to4
    (RFC 3056), the server and the client for Teredo (RFC 4380)."""
    value = int(ip)
    found = []
    if any(ip in net for net in _IPV4_SPELLINGS):
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    if ip in SIX_TO_FOUR:
        found.append(ipaddress.IPv4Address((value >> 80) & 0xFFFFFFFF))
    if ip in TEREDO and ip.teredo:
        found.extend(ip.teredo)
    # ISATAP: 00-00-5E-FE or, with the universal/local bit, 02-00-5E-FE before the IPv4.
    if (value >> 32) & 0xFDFFFFFF == 0x00005EFE:
        found.append(ipaddress.IPv4Address(value & 0xFFFFFFFF))
    return found


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_global and not ip.is_multicast


def is_public_address(value: str) -> bool:
    """Is `value` an IP address on the public internet (not loopback, private,
    link-local — cloud metadata lives there —, shared, reserved or multicast)?

    An IPv6 address that is only another spelling of an IPv4 address (IPv4-mapped,
    -translated, -compatible, NAT64) is judged as that IPv4 address; one that tunnels to
    IPv4 hosts (6to4, Teredo, ISATAP) must be public itself and so must every IPv4
    address it carries."""
    try:
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return _is_public(ip)
    if ip in NAT64_LOCAL_USE:
        return False
    inner = embedded_ipv4(ip)
    if not all(_is_public(v4) for v4 in inner):
        return False
    if any(ip in net for net in _IPV4_SPELLINGS):
        return True
    return _is_public(ip)


def _literal_addresses(host: str) -> list[str] | None:
    """The addresses `host` stands for if it is an IP literal in any form the resolver
    accepts (`127.1`, `0x7f000001`, `::127.0.0.1`, …), without asking DNS; None for a
    name."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return [host]  # with a zone that may not exist here, which getaddrinfo refuses
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None
    return [str(info[4][0]) for info in infos]


def webhook_host_problem(url: str) -> str:
    """Why the console refuses `url` as a webhook ("" if it does not): an address inside
    our own network, given literally or as localhost. Names are checked again when the
    alert is sent, against the addresses they resolve to then."""
    if _allow_private():
        return ""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return "a webhook on this machine (localhost) is not allowed"
    addresses = _literal_addresses(host)
    if addresses is None:
        return ""
    if not addresses or not all(is_public_address(a) for a in addresses):
        return f"{host} is a loopback, private or link-local address; use a public address"
    return ""


def _public_address(host: str, port: int) -> str:
    """The address to connect to for `host`, refusing any name that resolves (even in
    part) to an address inside our network: the check and the connection use the same
    answer, so a name that changes its answer in between cannot slip through."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ChannelError(f"could not resolve the webhook host {host}: {exc}") from exc
    addresses = [str(info[4][0]) for info in infos]
    refused = [a for a in addresses if not is_public_address(a)]
    if refused or not addresses:
        raise ChannelError(
            f"the webhook host {host} resolves to {', '.join(refused) or 'nothing'}: alerts are "
            "not sent to loopback, private or link-local addresses "
            "(ALERTS_WEBHOOK_ALLOW_PRIVATE allows them)",
            permanent=True,
        )
    return addresses[0]


class WebhookChannel(BaseChannel):
    """POST the alert as JSON, signed with HMAC-SHA256 of the exact body bytes."""

    def __init__(self, target: str, secret: str, *, delivery_id: str = "") -> None:
        super().__init__(target)
        self.secret = secret
        self.delivery_id = delivery_id

    def notify(self, content: AlertContent) -> None:
        if not self.target.lower().startswith(("http://", "https://")):
            raise ChannelError("the webhook URL must start with http:// or https://", permanent=True)
        body = encode_payload(content.payload)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "SMTPPlus-Alerts/1",
            SIGNATURE_HEADER: sign(body, self.secret),
        }
        if self.delivery_id:
            # Stable across retries, so a receiver can drop duplicates.
            headers["X-SMTPPlus-Delivery"] = self.delivery_id
        parts = urlsplit(self.target)
        timeout = settings.ALERTS_WEBHOOK_TIMEOUT
        conn_class = HTTPSConnection if parts.scheme.lower() == "https" else HTTPConnection
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        if parts.username or parts.password:
            token = base64.b64encode(
                f"{unquote(parts.username or '')}:{unquote(parts.password or '')}".encode()
            ).decode()
            headers["Authorization"] = f"Basic {token}"
        # http.client rather than urllib: headers keep their documented spelling, and a
        # redirect is reported instead of being replayed as a GET without the body.
        try:
            conn = conn_class(parts.hostname or "", parts.port, timeout=timeout)
            if not _allow_private():
                pinned = _public_address(conn.host, conn.port)
                # http.client still sends Host: and TLS SNI for the name, and verifies the
                # certificate against it; only the socket goes to the vetted address.
                conn._create_connection = (  # type: ignore[attr-defined]
                    lambda address, timeout, source=None: socket.create_connection(
                        (pinned, address[1]), timeout, source
                    )
                )
            try:
                conn.request("POST", path, body=body, headers=headers)
                response = conn.getresponse()
                status, reason = response.status, response.reason
                location = response.getheader("Location", "")
                response.read(4096)
            finally:
                conn.close()
        except TimeoutError as exc:
            raise ChannelError(f"the webhook did not answer within {timeout} s") from exc
        except (OSError, HTTPException, ValueError) as exc:
            raise ChannelError(f"could not reach the webhook: {exc.__class__.__name__}: {exc}") from exc
        if 200 <= status < 300:
            return
        if 300 <= status < 400:
            raise ChannelError(
                f"the webhook answered HTTP {status} (redirect to {location or '?'}); enter the final URL",
                permanent=True,
            )
        # 408 and 429 say "later"; other 4xx will not get better by retrying.
        permanent = 400 <= status < 500 and status not in (408, 429)
        raise ChannelError(f"the webhook answered HTTP {status} {reason}".rstrip(), permanent=permanent)
