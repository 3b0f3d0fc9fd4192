"""How this relay's mail reaches the internet: what a sending domain's SPF record must
authorize for receivers to accept the relay as a sender of that domain.

Two settings say it, either or both: `RELAY_EGRESS_IPS`, the public addresses (or
networks) the delivery workers connect from when they deliver directly or to a
smarthost that passes the connecting address on; and `RELAY_SPF_INCLUDE`, the domain a
smarthost asks its customers to `include:` in their SPF record. Nothing here can be
discovered reliably from inside (a relay behind NAT does not know its public address),
so the operator states it; when neither is set the SPF check says what to set.
"""

from __future__ import annotations

import ipaddress
import re

import dns.exception
import dns.name
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_LABEL = re.compile(r"^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9])?$")


def parse_egress_ips(entries: list[str]) -> list[Network]:
    """The networks of `RELAY_EGRESS_IPS` entries (an address is a /32 or /128)."""
    networks: list[Network] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry)
        except ValueError:
            try:
                loose = ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ImproperlyConfigured(
                    f"RELAY_EGRESS_IPS: {entry!r} is not an IP address or network "
                    "(like 203.0.113.7, 203.0.113.0/28 or 2001:db8::25)") from None
            # 203.0.113.7/24 is ambiguous: one address, or the network it is in?
            raise ImproperlyConfigured(
                f"RELAY_EGRESS_IPS: {entry!r} has host bits set; write the network "
                f"({loose}) or the single address") from None
        networks.append(network)
    return networks


def parse_spf_include(value: str) -> str:
    """The `RELAY_SPF_INCLUDE` domain as an A-label, lower case, without trailing dot."""
    domain = value.strip().rstrip(".")
    if not domain:
        return ""
    if domain.lower().startswith("include:"):
        domain = domain[len("include:"):]
    try:
        name = dns.name.from_text(domain.encode("idna").decode("ascii"))
    except (UnicodeError, dns.exception.DNSException):
        raise ImproperlyConfigured(
            f"RELAY_SPF_INCLUDE: {value!r} is not a domain name "
            "(like spf.smarthost.example)") from None
    text = name.to_text(omit_final_dot=True).lower()
    # At least two labels ("localhost" is no SPF domain), each letters, digits, - and _.
    if len(name.labels) < 3 or not all(_LABEL.match(label) for label in text.split(".")):
        raise ImproperlyConfigured(
            f"RELAY_SPF_INCLUDE: {value!r} is not a domain name (like spf.smarthost.example)")
    return text


def egress_networks() -> list[Network]:
    return parse_egress_ips(list(settings.RELAY_EGRESS_IPS))


def spf_include() -> str:
    return parse_spf_include(settings.RELAY_SPF_INCLUDE)
