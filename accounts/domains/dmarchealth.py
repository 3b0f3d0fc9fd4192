"""The DMARC findings of a sending domain, in the console's words, each with its fix.

A receiver looks for the policy of a From: domain at `_dmarc.<domain>` and, when there is
none, at `_dmarc.<organizational domain>` (RFC 7489 6.6.3: the registrable domain, found
with the Public Suffix List — `publicsuffixlist`, which ships the list: no download at
run time). The record is parsed by the `dmarc` library; its policy (`p=`, or `sp=` for a
subdomain that inherits it), `pct=`, alignment modes (`adkim=`/`aspf=`) and reports
(`rua=`) are read into findings. The fix of an existing record is the changed record.

A lookup that could not be answered (SERVFAIL, timeout) gives an "unknown" finding, never
"no DMARC record".

Codes (`Finding.code`) let the provider verdicts read stored findings: the policy that
applies is one of "dmarc.p_none", "dmarc.p_quarantine", "dmarc.p_reject"; a domain
without a usable record has "dmarc.none", "dmarc.multiple" or "dmarc.syntax".
"""

from __future__ import annotations

import re
from functools import lru_cache

import dmarc
import dns.resolver
from publicsuffixlist import PublicSuffixList

from accounts.domains.findings import Finding, Severity, ordered
from accounts.domains.spfrecord import zone_line
from smtpplus.dns import lookup_txt, make_resolver

CHECK = "dmarc"
POLICIES = ("none", "quarantine", "reject")
UNUSABLE = ("dmarc.none", "dmarc.multiple", "dmarc.syntax", "dmarc.unknown")
_RECORD = re.compile(r"^\s*v\s*=\s*DMARC1(?![0-9A-Za-z])")
REPLACE = "Publish it in place of the current record (one DMARC record per name)."


@lru_cache(maxsize=1)
def _psl() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """The registrable domain `domain` belongs to (itself when it is one)."""
    return _psl().privatesuffix(domain.lower()) or domain.lower()


def dmarc_records(records: tuple[str, ...]) -> list[str]:
    return [r.strip() for r in records if _RECORD.match(r)]


def _finding(severity: Severity, code: str, title: str, explanation: str, name: str = "",
             record: str = "") -> Finding:
    return Finding(CHECK, severity, title, explanation,
                   zone_line(name, record) if record else "", name if record else "",
                   "TXT" if record else "", code)


def _unknown(domain: str, why: str) -> Finding:
    return _finding(
        "unknown", "dmarc.unknown", f"Could not check the DMARC record of {domain}",
        f"{why}. This is not a missing record: DNS did not answer, so nothing can be said "
        "about DMARC until a check can run. Check again later.")


def starter_record(domain: str) -> str:
    return f"v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}"


def dmarc_findings(domain: str, resolver: dns.resolver.Resolver | None = None) -> list[Finding]:
    """Every DMARC finding of `domain` (an A-label)."""
    resolver = resolver or make_resolver()
    name = f"_dmarc.{domain}"
    lookup = lookup_txt(name, resolver)
    if not lookup.ran:
        return [_unknown(domain, lookup.describe())]
    records = dmarc_records(lookup.records)
    if len(records) > 1:
        return [_multiple(name, records)]
    if records:
        return ordered(_policy(domain, name, records[0], inherited=False))
    org = organizational_domain(domain)
    if org != domain:
        org_name = f"_dmarc.{org}"
        org_lookup = lookup_txt(org_name, resolver)
        if not org_lookup.ran:
            return [_unknown(domain, f"{name} has no DMARC record, and "
                                     f"{org_lookup.describe()}")]
        org_records = dmarc_records(org_lookup.records)
        if len(org_records) > 1:
            return [_multiple(org_name, org_records)]
        if org_records:
            return [_finding(
                "info", "dmarc.inherited", f"{domain} uses the DMARC record of {org}",
                f"{name} has none, so receivers apply the policy published at {org_name} "
                f"(its sp= for subdomains, or else its p=): \"{org_records[0]}\"."),
                *ordered(_policy(domain, org_name, org_records[0], inherited=True))]
    where = f" Publishing it at _dmarc.{org} instead covers {org} and all its subdomains." \
        if org != domain else ""
    return [_finding(
        "error", "dmarc.none", f"{domain} has no DMARC record",
        "Without one, receivers apply no policy to mail that fails authentication, and "
        "Gmail, Yahoo and Microsoft refuse or spam-folder bulk mail from the domain (they "
        "require at least p=none). Publish this record; p=none only asks for reports "
        "(rua=: use a mailbox you read), and changes nothing for delivery. Once the reports "
        f"show your mail passes, move to p=quarantine, then p=reject.{where}",
        name, starter_record(domain))]


def _multiple(name: str, records: list[str]) -> Finding:
    shown = " and ".join(f'"{r}"' for r in records)
    return _finding(
        "error", "dmarc.multiple", f"{name} has {len(records)} DMARC records",
        f"It publishes {shown}. With more than one, receivers ignore them all, as if there "
        "were no DMARC record. Keep one: this is the first.", name, records[0])


def _tags(record: str) -> list[tuple[str, str]]:
    """The tags of a record as written, loosely: what a fix starts from."""
    pairs: list[tuple[str, str]] = []
    for token in re.split(r"[;\s]+", record.strip()):
        if "=" in token:
            tag, value = token.split("=", 1)
            pairs.append((tag.strip().lower(), value.strip()))
        elif token and pairs:  # "mailto:a@x, mailto:b@x": a list with spaces
            pairs[-1] = (pairs[-1][0], pairs[-1][1] + token)
    return pairs


def _valid(tag: str, value: str) -> bool:
    value = value.lower()
    if tag in ("p", "sp"):
        return value in POLICIES
    if tag in ("adkim", "aspf"):
        return value in ("r", "s")
    if tag == "pct":
        return value.isdigit() and 0 <= int(value) <= 100
    if tag == "ri":
        return value.isdigit()
    return tag in ("rua", "ruf", "fo", "rf")


def changed(record: str, tag: str, value: str | None) -> str:
    """`record` with `tag` set to `value` (None: removed), its invalid tags dropped."""
    pairs = [(t, v) for t, v in _tags(record) if t != "v" and _valid(t, v)]
    if not any(t == "p" for t, _ in pairs):
        pairs.insert(0, ("p", "none"))
    pairs = [(t, v) for t, v in pairs if t != tag]
    if value is not None:
        pairs.insert(0 if tag == "p" else len(pairs), (tag, value))
    pairs.sort(key=lambda pair: pair[0] != "p")  # v=, then p=, then the rest as written
    return "; ".join(["v=DMARC1", *(f"{t}={v}" for t, v in pairs)])


def _parse(domain: str, record: str) -> tuple[dmarc.Policy | None, str]:
    policy = dmarc.Policy("DMARC1", domain)
    try:
        policy.parse_record(record, strict=True)
    except dmarc.RecordSyntaxError as exc:
        return None, str(exc)
    if not 0 <= policy.pct <= 100:
        return None, f"pct={policy.pct} is not a percentage (0 to 100)"
    return policy, ""


def _policy(domain: str, name: str, record: str, *, inherited: bool) -> list[Finding]:
    policy, error = _parse(domain, record)
    if policy is None:
        return [_finding(
            "error", "dmarc.syntax", f"The DMARC record at {name} has an error",
            f'"{record}": {error}. Receivers ignore a record they cannot read, as if there '
            f"were none. This is the record with its errors removed. {REPLACE}",
            name, changed(record, "v", None))]
    p = policy.p.value
    sp = policy.sp.value if policy.sp is not dmarc.DMARCDisposition.UNSPECIFIED else ""
    tag = "sp" if inherited and sp else "p"
    applies = sp if inherited and sp else p
    subject = f"{domain} (a subdomain of {name[len('_dmarc.'):]})" if inherited else domain
    findings = [_applied(subject, name, record, tag, applies)]
    if not inherited and sp and POLICIES.index(sp) < POLICIES.index(p):
        findings.append(_finding(
            "warning", "dmarc.sp_weaker", f"Subdomains of {domain} are less protected",
            f"sp={sp} applies to subdomains without a record of their own, weaker than "
            f"p={p}: forged mail from them is treated more leniently. This is the record "
            f"without sp=, so p={p} applies to them too. {REPLACE}",
            name, changed(record, "sp", None)))
    if applies != "none" and policy.pct < 100:
        findings.append(_finding(
            "warning", "dmarc.pct", f"The DMARC policy of {domain} applies to {policy.pct}% of mail",
            f"pct={policy.pct}: receivers apply {tag}={applies} to only {policy.pct}% of "
            "the mail that fails DMARC, and the weaker treatment to the rest. That is for "
            f"a gradual start; once the reports are clean remove pct=. {REPLACE}",
            name, changed(record, "pct", None)))
    findings += _alignment(domain, policy)
    if not policy.rua:
        findings.append(_finding(
            "info", "dmarc.no_rua", f"Nobody receives DMARC reports for {domain}",
            "The record has no rua=, so receivers send no aggregate reports: you cannot see "
            "who sends as the domain or whether your own mail passes. This is the record "
            f"with one (use a mailbox you read). {REPLACE}",
            name, changed(record, "rua", f"mailto:dmarc-reports@{name[len('_dmarc.'):]}")))
    return findings


def _applied(subject: str, name: str, record: str, tag: str, applies: str) -> Finding:
    if applies == "none":
        return _finding(
            "warning", "dmarc.p_none", f"The DMARC policy of {subject} is {tag}=none",
            "Receivers only report mail that fails DMARC and deliver it anyway: the domain "
            "meets Gmail's, Yahoo's and Microsoft's bulk-sender minimum, but forged mail "
            "still arrives. When the reports show your own mail passes, publish this "
            f"record (quarantine: failing mail goes to spam), then p=reject. {REPLACE}",
            name, changed(record, tag, "quarantine"))
    what = ("goes to the spam folder" if applies == "quarantine" else "is refused")
    return _finding(
        "ok", f"dmarc.p_{applies}", f"The DMARC policy of {subject} is {tag}={applies}",
        f"Mail from the domain that fails DMARC {what} at receivers that apply DMARC.")


def _alignment(domain: str, policy: dmarc.Policy) -> list[Finding]:
    findings: list[Finding] = []
    if policy.adkim is dmarc.DMARCAlignment.STRICT:
        findings.append(_finding(
            "info", "dmarc.adkim_strict", f"DMARC requires strict DKIM alignment for {domain}",
            f"adkim=s: a DKIM signature counts only when its d= is exactly the From: domain. "
            f"This relay signs with d={domain}, so mail From: {domain} aligns; mail From: a "
            "subdomain of it does not (relaxed alignment, adkim=r, would accept it)."))
    if policy.aspf is dmarc.DMARCAlignment.STRICT:
        findings.append(_finding(
            "info", "dmarc.aspf_strict", f"DMARC requires strict SPF alignment for {domain}",
            "aspf=s: SPF counts only when the envelope sender (Return-Path) domain is exactly "
            "the From: domain. A smarthost that sends with its own bounce address never "
            "aligns; DKIM alignment still lets such mail pass DMARC."))
    return findings
