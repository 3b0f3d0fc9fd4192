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

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver
import idna
from django.conf import settings

from relay.upstreams import Reply, UpstreamSpec, network_error, smtp_transaction

_TEMPORARY_DNS = (dns.exception.Timeout, dns.resolver.NoNameservers, dns.resolver.LifetimeTimeout)


def _domain_of(address: str) -> str:
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return domain


class MxTransport:
    def __init__(self, spec: UpstreamSpec, timeout: float) -> None:
        self.spec = spec
        self.timeout = timeout
        self.label = "mx"
        self.resolver = dns.asyncresolver.Resolver()
        if spec.nameserver:
            host, _, port = spec.nameserver.rpartition(":")
            self.resolver.nameservers = [host or spec.nameserver]
            if host and port.isdigit():
                self.resolver.port = int(port)
        self.resolver.lifetime = min(timeout, 30.0)

    async def _addresses(self, host: str) -> list[str]:
        found: list[str] = []
        for rdtype in ("AAAA", "A"):
            try:
                answer = await self.resolver.resolve(host, rdtype)
            except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
                continue
            found += [r.to_text() for r in answer]
        return found

    async def resolve(self, domain: str) -> list[tuple[str, str]] | Reply:
        """[(MX host name, IP address), …] in the order to try, or the reply to give."""
        try:
            try:
                answer = await self.resolver.resolve(domain, "MX")
            except dns.resolver.NoAnswer:
                hosts = [domain]
            else:
                records = sorted(answer, key=lambda r: (r.preference, random.random()))
                if len(records) == 1 and records[0].exchange.to_text() == ".":
                    return Reply(
                        None, "5.1.10",
                        f"Domain {domain} does not accept mail (null MX, RFC 7505)", domain,
                    )
                hosts = [r.exchange.to_text().rstrip(".") for r in records]
            pairs = [(host, ip) for host in hosts for ip in await self._addresses(host)]
        except dns.resolver.NXDOMAIN:
            return Reply(None, "5.1.2", f"Domain {domain} does not exist (DNS NXDOMAIN)", domain)
        except _TEMPORARY_DNS as exc:
            return Reply(None, "4.4.3", f"DNS lookup for {domain} failed: {exc}", domain)
        if not pairs:
            return Reply(None, "4.4.4", f"No address found for the mail hosts of {domain}", domain)
        return pairs

    async def _send_domain(
        self, domain: str, sender: str, recipients: list[str], raw: bytes
    ) -> dict[str, Reply]:
        targets = await self.resolve(domain)
        if isinstance(targets, Reply):
            return {r: targets for r in recipients}
        last = Reply(None, "4.4.1", f"No mail host of {domain} answered", domain)
        for host, ip in targets:
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
            result = await smtp_transaction(smtp, label, sender, recipients, raw)
            try:
                await smtp.quit(timeout=5)
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                smtp.close()
            return result.replies
        return {r: last for r in recipients}

    async def send(self, sender: str, recipients: list[str], raw: bytes) -> dict[str, Reply]:
        by_domain: dict[str, list[str]] = defaultdict(list)
        for rcpt in recipients:
            by_domain[_domain_of(rcpt)].append(rcpt)
        replies: dict[str, Reply] = {}
        for domain, rcpts in by_domain.items():
            replies.update(await self._send_domain(domain, sender, rcpts, raw))
        return replies

    async def close(self) -> None:
        return None
