"""Reading a sending domain's SPF record: the walk of its tree, pyspf's evaluation, and
the changed records the SPF check (`accounts.domains.spfhealth`) offers as fixes.

Receivers evaluate SPF for the envelope sender's domain (RFC 7208). A domain needs exactly
one `v=spf1` TXT record; an evaluation may make at most 10 DNS-querying lookups
(`include`, `a`, `mx`, `ptr`, `exists`, `redirect`, counted through every included
record) and at most 2 that find nothing ("void"); past either, or with a syntax error,
receivers get a permanent error and SPF fails for every message. And it must authorize
how this relay sends (`smtpplus.egress`: the egress addresses, or the smarthost's
`include:`).

Two parts, so that a verdict never rests on our reading alone:
- a walk of the record tree (dnspython, through the product's one resolver), each term
  parsed by pyspf's own parser, that says *which* term is wrong and builds the changed
  record to publish;
- pyspf, the reference SPF implementation, evaluating the record for each egress
  address exactly as a receiver would (`check_address`), and once for an address no
  record names, which exercises every term: an error it finds that the walk did not
  explain is still reported.

A lookup that could not be answered (SERVFAIL, timeout) gives an "unknown" finding
("could not check"), never "no SPF record".
"""

from __future__ import annotations

import contextvars
import re
from dataclasses import dataclass, field
from typing import Any

import dns.exception
import dns.resolver
import spf  # pyspf

from smtpplus.dns import describe_error, lookup_txt, make_resolver
from smtpplus.egress import Network, egress_networks, spf_include

CHECK = "spf"
MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
FOLLOW_LIMIT = 3 * MAX_LOOKUPS  # a walk stops reading includes past this many lookups
LOOKUP_MECHANISMS = ("include", "a", "mx", "ptr", "exists")
# An address no SPF record names (TEST-NET-1's last): evaluating it runs every term.
PROBE_ADDRESS = "192.0.2.255"
_ALL_TERM = re.compile(r"^[+\-~?]?all$", re.IGNORECASE)
_QUALIFIER_WORDS = {"pass": "+all", "neutral": "?all", "softfail": "~all", "fail": "-all"}

# --- pyspf's DNS goes through the product's resolver ---------------------------------
_resolver: contextvars.ContextVar[dns.resolver.Resolver | None] = contextvars.ContextVar(
    "spf_resolver", default=None)


def _pyspf_lookup(name: str, qtype: str, *_args: Any, **_kwargs: Any) -> list[Any]:
    """pyspf's DNS hook (`spf.DNSLookup`): its answer format, from our resolver."""
    resolver = _resolver.get() or make_resolver()
    try:
        answer = resolver.resolve(name, qtype, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.DNSException, OSError) as exc:
        raise spf.TempError(f"DNS: {describe_error(exc)}") from exc
    found: list[Any] = []
    for rdata in answer:
        if qtype in ("A", "AAAA"):
            found.append(((name, qtype), rdata.address))
        elif qtype == "MX":
            found.append(((name, qtype), (rdata.preference, str(rdata.exchange))))
        elif qtype == "PTR":
            found.append(((name, qtype), rdata.target.to_text(True)))
        elif qtype in ("TXT", "SPF"):
            found.append(((name, qtype), rdata.strings))
    return found


spf.DNSLookup = _pyspf_lookup


def check_address(ip: str, domain: str, resolver: dns.resolver.Resolver | None = None,
                  record: str | None = None) -> tuple[str, str]:
    """pyspf's result for mail from `postmaster@domain` sent from `ip`: ("pass", …),
    ("softfail", …), ("permerror", why), ("temperror", why)… `record`: evaluate this
    text as the domain's record instead of the published one (a changed record)."""
    token = _resolver.set(resolver or make_resolver())
    try:
        result, _code, explanation = spf.query(
            i=ip, s=f"postmaster@{domain}", h=domain, strict=True).check(spf=record)
    finally:
        _resolver.reset(token)
    return str(result), str(explanation)


# --- the record tree -----------------------------------------------------------------
def spf_records(records: tuple[str, ...]) -> list[str]:
    """The SPF records among TXT records (RFC 7208 4.5: "v=spf1" alone or then a space)."""
    return [r.strip() for r in records if re.match(r"^v=spf1( |$)", r.strip(), re.IGNORECASE)]


@dataclass
class Walk:
    """What following one domain's record through its includes and redirect found."""

    domain: str
    resolver: dns.resolver.Resolver
    lookups: dict[str, int] = field(default_factory=dict)  # top-level term -> lookups
    void: list[str] = field(default_factory=list)  # "term (in domain)"
    void_top: list[str] = field(default_factory=list)  # void terms of the domain's own record
    # domain, term, why: a term pyspf's parser refuses (syntax) or that leads nowhere
    syntax: list[tuple[str, str, str]] = field(default_factory=list)
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    targets: set[str] = field(default_factory=set)  # every include:/redirect= domain
    ptr: list[str] = field(default_factory=list)  # ptr terms of the domain's own record
    all_term: tuple[str, str, str] | None = None  # domain, its record, the effective all
    # The last record of the domain's policy (its own, or the end of its redirect= chain):
    # where an `all` term goes when there is none.
    policy_record: tuple[str, str] = ("", "")
    truncated: bool = False  # stopped following includes past FOLLOW_LIMIT lookups

    @property
    def lookup_count(self) -> int:
        return sum(self.lookups.values())

    def run(self, record: str) -> None:
        self._record(self.domain, record, (self.domain,), None, main=True)

    def _record(self, domain: str, record: str, chain: tuple[str, ...], top: str | None,
                *, main: bool) -> None:
        """Walk one record; `main`: it is the domain's policy (its own record, or where its
        redirect= leads), whose `all` term applies to every address nothing else names;
        `top`: the domain's own term this record was reached through."""
        query = spf.query(i=PROBE_ADDRESS, s=f"postmaster@{domain}", h=domain, strict=True)
        if main:
            self.policy_record = (domain, record)
        mechanisms: list[tuple[str, str, str, str]] = []
        redirect = ""
        for term in record.split()[1:]:
            modifier = spf.RE_MODIFIER.split(term)[1:]
            if len(modifier) == 2:
                if modifier[0].lower() == "redirect":
                    if redirect:
                        self.syntax.append((domain, term, "redirect= appears twice"))
                    redirect = term
                continue
            try:
                mech, name, arg, _cidr, result = query.validate_mechanism(term)
            except spf.PermError as exc:
                self.syntax.append((domain, term, str(exc)))
                continue
            except spf.TempError as exc:  # a macro that needs DNS to expand
                self.unknown.append(f"{term} in {domain}: {exc}")
                continue
            mechanisms.append((mech, name, str(arg), str(result)))
        for mech, name, arg, result in mechanisms:
            if name == "all":
                if main and self.all_term is None:
                    self.all_term = (domain, record, _QUALIFIER_WORDS.get(result, mech))
                return  # terms after "all" are never evaluated, nor is redirect=
            self._term(domain, mech, name, arg, chain, top or mech)
        if redirect:
            target = redirect.split("=", 1)[1]
            self._count(top or redirect)
            if "%" not in target:
                self._follow(domain, redirect, target, chain, top or redirect, main=main)

    def _void(self, domain: str, term: str) -> None:
        self.void.append(term if domain == self.domain else f"{term} (in {domain})")
        if domain == self.domain:
            self.void_top.append(term)

    def _count(self, top: str) -> None:
        self.lookups[top] = self.lookups.get(top, 0) + 1

    def _term(self, domain: str, mech: str, name: str, arg: str, chain: tuple[str, ...],
              top: str) -> None:
        if name not in LOOKUP_MECHANISMS:
            return
        self._count(top)
        if "%" in mech:
            return  # a macro: what it looks up depends on each message
        if name == "include":
            self._follow(domain, mech, arg, chain, top, main=False)
        elif name == "ptr":
            if domain == self.domain:
                self.ptr.append(mech)
        else:
            rdtypes = {"mx": ("MX",), "exists": ("A",)}.get(name, ("A", "AAAA"))
            state = _any_record(arg, rdtypes, self.resolver)
            if state == "void":
                self._void(domain, mech)
            elif state:
                self.unknown.append(f"{mech} in {domain}: {state}")

    def _follow(self, domain: str, term: str, target: str, chain: tuple[str, ...], top: str,
                *, main: bool) -> None:
        target = target.rstrip(".").lower()
        if self.lookup_count > FOLLOW_LIMIT:
            self.truncated = True  # far past the limit already: no need to read further
            return
        if target in chain:
            self.problems.append((domain, term, f"{target} is already being evaluated (a loop)"))
            return
        lookup = lookup_txt(target, self.resolver)
        if not lookup.ran:
            self.unknown.append(f"{term} in {domain}: {lookup.error}")
            return
        records = spf_records(lookup.records)
        if not records:
            if lookup.status != "found":
                self._void(domain, term)
            self.problems.append((domain, term, f"{target} has no SPF record"))
            return
        if len(records) > 1:
            self.problems.append((domain, term, f"{target} has {len(records)} SPF records"))
            return
        self.targets.add(target)
        self._record(target, records[0], (*chain, target), top, main=main)


def _any_record(name: str, rdtypes: tuple[str, ...], resolver: dns.resolver.Resolver) -> str:
    """"" if `name` has a record of one of the types, "void" if none, else the error."""
    for rdtype in rdtypes:
        try:
            resolver.resolve(name, rdtype, search=False)
            return ""
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            continue
        except (dns.exception.DNSException, OSError) as exc:
            return describe_error(exc)
    return "void"


# --- changed records -----------------------------------------------------------------
def zone_line(name: str, value: str) -> str:
    """A TXT record as one zone-file line, split into ≤255-byte strings when longer."""
    chunks = [value[i:i + 255] for i in range(0, len(value), 255)] or [""]
    return f"{name}. IN TXT " + " ".join(f'"{c}"' for c in chunks)


def with_terms(record: str, terms: list[str]) -> str:
    """`record` with `terms` inserted before its `all` term (or redirect=, or at the end)."""
    tokens = record.split()
    have = {t.lower() for t in tokens}
    new = [t for t in terms if t.lower() not in have]
    at = next((i for i, t in enumerate(tokens) if _ALL_TERM.match(t)), None)
    if at is None:
        at = next((i for i, t in enumerate(tokens) if t.lower().startswith("redirect=")),
                  len(tokens))
    return " ".join(tokens[:at] + new + tokens[at:])


def without_terms(record: str, terms: list[str]) -> str:
    drop = {t.lower() for t in terms}
    return " ".join(t for t in record.split() if t.lower() not in drop)


def replace_all(record: str, new: str) -> str:
    tokens = [new if _ALL_TERM.match(t) else t for t in record.split()]
    return " ".join(tokens) if new in tokens else with_terms(record, [new])


def merged(records: list[str]) -> str:
    """One record with the terms of several (the first `all` term kept, at the end)."""
    terms: list[str] = []
    final = ""
    for record in records:
        for term in record.split()[1:]:
            if _ALL_TERM.match(term):
                final = final or term
            elif term.lower() not in {t.lower() for t in terms}:
                terms.append(term)
    return " ".join(["v=spf1", *terms, *([final] if final else [])])


def shown(net: Network) -> str:
    """An address as itself, a network with its prefix."""
    return str(net.network_address if net.prefixlen == net.max_prefixlen else net)


def egress_terms(networks: list[Network]) -> list[str]:
    return [f"{'ip4' if net.version == 4 else 'ip6'}:{shown(net)}" for net in networks]


def relay_terms() -> list[str]:
    include = spf_include()
    return egress_terms(egress_networks()) + ([f"include:{include}"] if include else [])


def probe_addresses(net: Network) -> list[str]:
    """The addresses of an egress network an evaluation tries: its first and last."""
    first, last = net[0], net[-1]
    return [str(first)] if first == last else [str(first), str(last)]
