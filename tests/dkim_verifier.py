"""An independent DKIM verifier for the tests: Perl's Mail::DKIM (Debian's
libmail-dkim-perl), asking the test DNS server for the keys.

The relay signs with dkimpy; checking its signatures with dkimpy as well would only show
that dkimpy agrees with itself. Mail::DKIM is a separate implementation (the one
SpamAssassin and amavis use), and it fetches the key the way a receiving server does:
a TXT lookup of `<selector>._domainkey.<domain>`, here sent to the Knot DNS server the
tests run (`dns_server.address`).

Debian's Mail::DKIM (1.20230212) predates Ed25519 signatures (RFC 8463): it reports them
"invalid (unsupported algorithm)" and judges the message by its RSA signature. Ed25519
signatures are verified by a third implementation, Node.js's mailauth (`mailauth_verify`,
installed with npm into `.venv/node-mailauth` on first use), with its DNS lookups also
sent to the test server.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

_SCRIPT = r"""
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

my ($host, $port) = @ARGV;
my $resolver = Net::DNS::Resolver->new(
    nameservers => [$host], port => $port, recurse => 0,
    udp_timeout => 5, tcp_timeout => 5, retry => 1, persistent_udp => 0,
);
Mail::DKIM::DNS::resolver($resolver);
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\015?\012\z/\015\012/;
    $dkim->PRINT($line);
}
$dkim->CLOSE;
foreach my $sig ($dkim->signatures) {
    my $detail = $sig->result_detail // "";
    $detail =~ s/[\t\n]/ /g;
    print join("\t", "signature", $sig->result, $sig->domain // "", $sig->selector // "",
               $sig->algorithm // "", $detail), "\n";
}
my $detail = $dkim->result_detail // "";
$detail =~ s/[\t\n]/ /g;
print join("\t", "overall", $dkim->result, $detail), "\n";
"""


@dataclass(frozen=True)
class Signature:
    result: str  # "pass", "fail", "invalid", "temperror", …
    domain: str
    selector: str
    algorithm: str  # "rsa-sha256", …
    detail: str


@dataclass(frozen=True)
class Verdict:
    result: str  # the message's overall result: "pass" if any signature passes
    detail: str
    signatures: tuple[Signature, ...]

    def passed(self, domain: str, selector: str | None = None) -> bool:
        return any(
            s.result == "pass" and s.domain.lower() == domain.lower()
            and (selector is None or s.selector == selector)
            for s in self.signatures
        )


def available() -> bool:
    if shutil.which("perl") is None:
        return False
    probe = subprocess.run(["perl", "-MMail::DKIM::Verifier", "-e", "1"], capture_output=True)
    return probe.returncode == 0


def verify(raw: bytes, dns_address: str) -> Verdict:
    """Verify every DKIM signature of `raw`, with keys from the DNS server at
    `dns_address` ("127.0.0.1:port")."""
    if not available():
        pytest.fail("This test needs Perl's Mail::DKIM (Debian: apt-get install "
                    "libmail-dkim-perl; test.sh installs it when run as root)")
    host, _, port = dns_address.rpartition(":")
    done = subprocess.run(
        ["perl", "-e", _SCRIPT, host, port], input=raw, capture_output=True, timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"Mail::DKIM failed: {done.stderr.decode(errors='replace')}")
    signatures: list[Signature] = []
    overall = Verdict("none", "no output", ())
    for line in done.stdout.decode().splitlines():
        kind, *fields = line.split("\t")
        if kind == "signature":
            signatures.append(Signature(*(fields + [""] * 5)[:5]))
        elif kind == "overall":
            result, detail = (fields + ["", ""])[:2]
            overall = Verdict(result, detail, ())
    return Verdict(overall.result, overall.detail, tuple(signatures))


def publish(dns_server: Any, zone: str, keys: Iterable[Any], extra: Iterable[tuple[str, str, str]] = ()
            ) -> None:
    """Serve `zone` with the record of each DKIM key (`accounts.models.DkimKey`), exactly
    as the console tells the operator to publish it."""
    from accounts.actions.dkim_keys import record_of

    records = []
    for key in keys:
        record = record_of(key)
        records.append((record.name + ".", "TXT", record.quoted))
    dns_server.set_records(zone, [*records, *extra])


# --- Node.js's mailauth (Ed25519 too) ---------------------------------------------------------
MAILAUTH = "mailauth@7.1.0"
MAILAUTH_DIR = Path(__file__).resolve().parents[1] / ".venv" / "node-mailauth"
_MAILAUTH_SCRIPT = r"""
const { dkimVerify } = require('mailauth/lib/dkim/verify');
const dns = require('dns');
const [host, port] = process.argv.slice(1);
const servers = new dns.promises.Resolver({ timeout: 5000, tries: 1 });
servers.setServers([`${host}:${port}`]);
const chunks = [];
process.stdin.on('data', c => chunks.push(c));
process.stdin.on('end', async () => {
  const found = await dkimVerify(Buffer.concat(chunks), {
    resolver: (name, rr) => servers.resolve(name, rr),
  });
  process.stdout.write(JSON.stringify(found.results.map(r => ({
    result: r.status.result, domain: r.signingDomain, selector: r.selector,
    detail: r.status.comment || '',
  }))));
});
"""


def _mailauth_node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("This test needs Node.js and npm (Debian: apt-get install nodejs npm; "
                    "test.sh installs them when run as root)")
    wanted = MAILAUTH.rpartition("@")[2]
    manifest = MAILAUTH_DIR / "node_modules" / "mailauth" / "package.json"
    if not manifest.exists() or json.loads(manifest.read_text())["version"] != wanted:
        MAILAUTH_DIR.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(MAILAUTH_DIR), "--no-audit", "--no-fund",
             "--no-save", MAILAUTH],
            capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            pytest.fail(f"npm install {MAILAUTH} failed:\n{done.stderr}")
    return node


def mailauth_verify(raw: bytes, dns_address: str) -> list[Signature]:
    """Every DKIM signature of `raw` as mailauth judges it (algorithm left blank)."""
    node = _mailauth_node()
    host, _, port = dns_address.rpartition(":")
    done = subprocess.run(
        [node, "-e", _MAILAUTH_SCRIPT, host, port], input=raw, capture_output=True,
        timeout=60, cwd=MAILAUTH_DIR, env={"NODE_PATH": str(MAILAUTH_DIR / "node_modules"),
                                           "PATH": str(Path(node).parent)},
    )
    if done.returncode != 0:
        raise RuntimeError(f"mailauth failed: {done.stderr.decode(errors='replace')}")
    return [Signature(r["result"], r["domain"] or "", r["selector"] or "", "", r["detail"])
            for r in json.loads(done.stdout)]


def verified_domain(account: Any, name: str, include_subdomains: bool = False) -> Any:
    """`name` as a verified sending domain of `account` (marked by an operator: no DNS),
    whether or not the account has it already."""
    from django.utils import timezone

    from accounts.models import DomainStatus, SendingDomain, VerifiedHow

    row, _ = SendingDomain.objects.update_or_create(
        account=account, domain=name,
        defaults={"token": "t0ken", "status": DomainStatus.VERIFIED,
                  "verified_how": VerifiedHow.OPERATOR, "verified_at": timezone.now(),
                  "include_subdomains": include_subdomains},
    )
    return row
