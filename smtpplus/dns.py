"""One DNS resolver for every lookup the product makes.

Sending-domain verification, DKIM, SPF and DMARC checks and direct (MX) delivery all ask
DNS through resolvers built here, so that `SMTPPLUS_DNS_RESOLVERS` (a list of
`host[:port]`, `[v6]:port`) points all of them at the same servers — the system's
resolver (/etc/resolv.conf) when it is unset — with the same timeout
(`SMTPPLUS_DNS_TIMEOUT`, seconds).

A lookup that could not be answered (SERVFAIL from every server, a timeout, no server
reachable) is never reported as "no such record": `TxtLookup.ran` is False and `.error`
says what went wrong, so a check can say "could not check" instead of "record missing".
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.resolver
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

Status = Literal["found", "nxdomain", "nodata", "error"]


def parse_resolvers(entries: list[str]) -> list[tuple[str, int]]:
    """(address, port) of each `host[:port]` entry; a bad entry is named and refused."""
    servers: list[tuple[str, int]] = []
    for raw in entries:
        entry = raw.strip()
        if not entry:
            continue
        host, port = entry, "53"
        if entry.startswith("["):
            host, sep, rest = entry[1:].partition("]")
            if not sep or (rest and not rest.startswith(":")):
                raise ImproperlyConfigured(
                    f"SMTPPLUS_DNS_RESOLVERS: {entry!r} is not [IPv6]:port")
            port = rest[1:] or "53"
        elif entry.count(":") == 1:
            host, port = entry.split(":")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ImproperlyConfigured(
                f"SMTPPLUS_DNS_RESOLVERS: {entry!r}: {host!r} is not an IP address "
                "(resolvers are given by address, like 127.0.0.1:53 or [::1]:5353)") from None
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ImproperlyConfigured(
                f"SMTPPLUS_DNS_RESOLVERS: {entry!r}: {port!r} is not a port number")
        servers.append((host, int(port)))
    return servers


def _configure(resolver: dns.resolver.BaseResolver, timeout: float | None) -> None:
    servers = parse_resolvers(list(settings.SMTPPLUS_DNS_RESOLVERS))
    if servers:
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(host, port) for host, port in servers
        ]
    resolver.lifetime = float(timeout if timeout is not None else settings.SMTPPLUS_DNS_TIMEOUT)
    resolver.timeout = min(resolver.lifetime, 2.0)


def make_resolver(timeout: float | None = None) -> dns.resolver.Resolver:
    """A synchronous resolver on the configured servers, with the configured timeout."""
    resolver = dns.resolver.Resolver(configure=not settings.SMTPPLUS_DNS_RESOLVERS)
    _configure(resolver, timeout)
    return resolver


def make_async_resolver(timeout: float | None = None) -> dns.asyncresolver.Resolver:
    """The asyncio twin of `make_resolver()` (delivery to MX hosts)."""
    resolver = dns.asyncresolver.Resolver(configure=not settings.SMTPPLUS_DNS_RESOLVERS)
    _configure(resolver, timeout)
    return resolver


def describe_error(exc: Exception) -> str:
    """Plain words for a lookup that could not be answered."""
    if isinstance(exc, dns.resolver.LifetimeTimeout | dns.exception.Timeout):
        return "the DNS servers did not answer in time (timeout)"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "the DNS servers could not answer (SERVFAIL or refused)"
    if isinstance(exc, dns.name.NameTooLong | dns.name.LabelTooLong | dns.exception.SyntaxError):
        return f"not a name DNS can look up ({exc})"
    return f"DNS lookup failed: {exc}"


@dataclass(frozen=True)
class TxtLookup:
    """The TXT records at one name, or why there are none, or why nobody could tell."""

    name: str
    status: Status
    records: tuple[str, ...] = ()  # each record's character-strings joined
    error: str = ""

    @property
    def ran(self) -> bool:
        """Whether DNS answered (with records, NXDOMAIN or no data)."""
        return self.status != "error"

    @property
    def found(self) -> bool:
        return self.status == "found"

    def describe(self) -> str:
        if self.status == "found":
            return f"{len(self.records)} TXT record(s) at {self.name}"
        if self.status == "nxdomain":
            return f"{self.name} does not exist in DNS"
        if self.status == "nodata":
            return f"{self.name} has no TXT record"
        return f"could not look up {self.name}: {self.error}"


def _txt_text(rdata: object) -> str:
    strings = getattr(rdata, "strings", ())
    return b"".join(strings).decode("utf-8", "replace")


def lookup_txt(name: str, resolver: dns.resolver.Resolver | None = None) -> TxtLookup:
    """The TXT records at `name` (an A-label name)."""
    resolver = resolver or make_resolver()
    try:
        answer = resolver.resolve(name, "TXT", search=False)
    except dns.resolver.NXDOMAIN:
        return TxtLookup(name, "nxdomain")
    except dns.resolver.NoAnswer:
        return TxtLookup(name, "nodata")
    except (dns.exception.DNSException, OSError) as exc:
        return TxtLookup(name, "error", error=describe_error(exc))
    return TxtLookup(name, "found", tuple(_txt_text(r) for r in answer))
