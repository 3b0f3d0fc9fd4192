"""Direct delivery: the recipient domain's MX hosts (RFC 5321 §5, null MX RFC 7505).

MX records by preference (equal preferences in random order), then each host's A/AAAA
addresses; no MX at all → the domain's own A/AAAA ("implicit MX"). A null MX (`MX 0 .`)
or a domain that does not exist fails the recipients at once; a DNS timeout or SERVFAIL
defers them. STARTTLS is used when offered, opportunistically (no certificate check,
as MTAs do between each other) unless `mx?verify=yes`.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable

import aiosmtplib
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver
from django.conf import settings

from relay.delivery.upstreams.reply import Reply, network_error
from relay.delivery.upstreams.smtp import smtp_transaction
from relay.delivery.upstreams.spec import UpstreamSpec
from relay.dsn_params import DsnRequest
from relay.models import FailReason
from smtpplus.addresses import split_address
from smtpplus.dns import make_async_resolver

# A name DNS cannot even ask about: no later try can succeed.
_BAD_NAME = (dns.exception.SyntaxError, dns.name.NameTooLong, dns.name.IDNAException)


def _domain_of(address: str) -> str | None:
    """The A-label domain of a recipient address, or None if it is not a usable domain."""
    parts = split_address(address)
    return parts[1] if parts else None


def _dns_trouble(name: str, exc: dns.exception.DNSException) -> Reply:
    if isinstance(exc, _BAD_NAME):
        return Reply(
            None, "5.1.2", f"{name} is not a valid domain name ({exc})", name,
            reason=FailReason.NO_SUCH_DOMAIN,
        )
    # Timeouts, SERVFAIL (no nameserver answered) and the rest: the next try may work.
    return Reply(
        None, "4.4.3", f"DNS lookup for {name} failed: {exc}", name, reason=FailReason.DNS_FAILED
    )


class MxTransport:
    def __init__(self, spec: UpstreamSpec, timeout: float) -> None:
        self.spec = spec
        self.timeout = timeout
        self.label = "mx"
        # The product's one resolver (SMTPPLUS_DNS_RESOLVERS), unless the upstream names
        # its own nameserver.
        self.resolver = make_async_resolver(timeout=min(timeout, 30.0))
        # Without a cache every message would ask again for the same few domains.
        self.resolver.cache = dns.resolver.LRUCache()
        if spec.nameserver:
            host, _, port = spec.nameserver.rpartition(":")
            self.resolver.nameservers = [host or spec.nameserver]
            if host and port.isdigit():
                self.resolver.port = int(port)

    async def _addresses(self, host: str) -> tuple[list[str], Reply | None]:
        """A mail host's IPv6 and IPv4 addresses, and the DNS trouble met, if any."""
        found: list[str] = []
        trouble: Reply | None = None
        for rdtype in ("AAAA", "A"):
            try:
                answer = await self.resolver.resolve(host, rdtype)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            except dns.exception.DNSException as exc:
                # Temporary even for a bad name: the other hosts may just be down today.
                trouble = Reply(
                    None, "4.4.3", f"DNS lookup for {host} failed: {exc}", host,
                    reason=FailReason.DNS_FAILED,
                )
                continue
            found += [r.to_text() for r in answer]
        return found, trouble

    async def resolve(self, domain: str) -> list[str] | Reply:
        """The mail hosts of `domain` in the order to try, or the reply to give."""
        try:
            answer = await self.resolver.resolve(domain, "MX")
        except dns.resolver.NoAnswer:
            return [domain]
        except dns.resolver.NXDOMAIN:
            return Reply(
                None, "5.1.2", f"Domain {domain} does not exist (DNS NXDOMAIN)", domain,
                reason=FailReason.NO_SUCH_DOMAIN,
            )
        except dns.exception.DNSException as exc:
            return _dns_trouble(domain, exc)
        records = sorted(answer, key=lambda r: (r.preference, random.random()))
        if len(records) == 1 and records[0].exchange.to_text() == ".":
            return Reply(
                None, "5.1.10", f"Domain {domain} does not accept mail (null MX, RFC 7505)",
                domain, reason=FailReason.NULL_MX,
            )
        return [r.exchange.to_text().rstrip(".") for r in records]

    async def _send_domain(
        self, domain: str, sender: str, recipients: list[str], raw: bytes,
        dsn: DsnRequest | None = None,
        *, sign: Callable[[bytes], bytes] | None = None,
    ) -> dict[str, Reply]:
        hosts = await self.resolve(domain)
        if isinstance(hosts, Reply):
            return {r: hosts for r in recipients}
        last: Reply | None = None
        for host in hosts:
            # Host by host: DNS trouble with a backup host does not hold up the primary.
            ips, trouble = await self._addresses(host)
            last = last or trouble
            for ip in ips:
                label = f"{host}[{ip}]:{self.spec.mx_port}"
                # With certificate checks on, connect by name so the name can be verified.
                smtp = aiosmtplib.SMTP(
                    hostname=host if self.spec.verify else ip,
                    port=self.spec.mx_port,
                    timeout=self.timeout,
                    start_tls=None,
                    validate_certs=self.spec.verify,
                    local_hostname=settings.RELAY_HOSTNAME,
                )
                try:
                    await smtp.connect()
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                    last = network_error(exc, label, "connect to")
                    continue
                result = await smtp_transaction(smtp, label, sender, recipients, raw, dsn,
                                                sign=sign)
                try:
                    await smtp.quit(timeout=5)
                except (aiosmtplib.SMTPException, OSError, TimeoutError):
                    smtp.close()
                return result.replies
        if last is None:
            last = Reply(
                None, "4.4.4", f"No address found for the mail hosts of {domain}", domain,
                reason=FailReason.NO_ADDRESS,
            )
        return {r: last for r in recipients}

    async def send(
        self, sender: str, recipients: list[str], raw: bytes, dsn: DsnRequest | None = None,
        *, sign: Callable[[bytes], bytes] | None = None,
    ) -> dict[str, Reply]:
        by_domain: dict[str | None, list[str]] = defaultdict(list)
        for rcpt in recipients:
            by_domain[_domain_of(rcpt)].append(rcpt)
        replies: dict[str, Reply] = {}
        for domain, rcpts in by_domain.items():
            if domain is None:
                replies.update(
                    {r: Reply(None, "5.1.2", f"{r} has no valid domain name", "mx",
                              reason=FailReason.NO_SUCH_DOMAIN) for r in rcpts}
                )
                continue
            replies.update(await self._send_domain(domain, sender, rcpts, raw, dsn, sign=sign))
        return replies

    async def close(self) -> None:
        return None
