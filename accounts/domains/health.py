"""SPF and DMARC health of a sending domain, and what the large mailbox providers make of it.

`spf_findings` and `dmarc_findings` are checks of a domain (`(sending_domain, resolver) ->
list[Finding]`, as every check of a domain is; a plain domain name works too): they ask
DNS. `provider_verdicts` asks nothing: it reads the findings of the last check (stored in
`SendingDomain.check_result`) and the domain's DKIM keys, and says for each mailbox
provider rule whether the domain's mail would pass it:

- DMARC at any receiver: SPF or DKIM passes for the From: domain (aligned);
- Gmail, all senders (February 2024): SPF or DKIM passes;
- Gmail and Yahoo bulk senders (February 2024), Outlook.com high-volume senders (May
  2025): SPF passes *and* DKIM passes, a DMARC record with at least p=none, and DMARC
  passes (aligned SPF or DKIM).

SPF counts as aligned because the relay sends with the client's envelope sender, at the
domain; a smarthost that rewrites it to its own bounce domain leaves DKIM as the aligned
pass. DKIM passes when the domain is verified (only then does the relay sign for it) and
an active key's published record matches (`DkimKey.dns_status == "match"`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import dns.resolver

from accounts.domains import dmarchealth, spfhealth
from accounts.domains.findings import Finding
from accounts.models import DkimKeyState, SendingDomain

Result = Literal["pass", "fail", "unknown"]
HEALTH_CHECKS = (spfhealth.CHECK, dmarchealth.CHECK)


def _name(domain: SendingDomain | str) -> str:
    return domain.domain if isinstance(domain, SendingDomain) else domain


def spf_findings(domain: SendingDomain | str,
                 resolver: dns.resolver.Resolver | None = None) -> list[Finding]:
    """The SPF findings of a domain (`accounts.domains.spfhealth`); asks DNS."""
    return spfhealth.spf_findings(_name(domain), resolver)


def dmarc_findings(domain: SendingDomain | str,
                   resolver: dns.resolver.Resolver | None = None) -> list[Finding]:
    """The DMARC findings of a domain (`accounts.domains.dmarchealth`); asks DNS."""
    return dmarchealth.dmarc_findings(_name(domain), resolver)


def stored_findings(domain: SendingDomain, checks: tuple[str, ...] = HEALTH_CHECKS
                    ) -> list[Finding]:
    """The findings of the last check of the domain for `checks`, as stored."""
    raw = domain.check_result.get("findings") if isinstance(domain.check_result, dict) else None
    found = [Finding.from_dict(item) for item in raw if isinstance(item, dict)] \
        if isinstance(raw, list) else []
    return [f for f in found if f.check in checks]


@dataclass(frozen=True)
class Requirement:
    label: str  # "SPF passes"
    result: Result
    why: str  # the finding it rests on, in words


@dataclass(frozen=True)
class Verdict:
    provider: str  # "Gmail"
    rule: str  # "bulk senders (5,000+ messages a day), since February 2024"
    result: Result
    requirements: tuple[Requirement, ...]
    name: str = ""  # "Gmail (bulk senders)": the verdict in one line of a list

    @property
    def summary(self) -> str:
        return {"pass": "Would pass", "fail": "Would fail",
                "unknown": "Cannot tell yet"}[self.result]


def _combine(requirements: tuple[Requirement, ...], *, any_of: bool = False) -> Result:
    results = [r.result for r in requirements]
    if any_of and "pass" in results:
        return "pass"
    if "fail" in results and not any_of:
        return "fail"
    if "unknown" in results:
        return "unknown"
    return "fail" if any_of else "pass"


def _first(findings: list[Finding], severities: tuple[str, ...]) -> Finding | None:
    return next((f for f in findings if f.severity in severities), None)


def spf_state(findings: list[Finding]) -> Requirement:
    spf = [f for f in findings if f.check == spfhealth.CHECK]
    codes = {f.code for f in spf}
    label = "SPF passes"
    if not spf:
        return Requirement(label, "unknown", "SPF has not been checked yet")
    failing = _first([f for f in spf if f.code != "spf.unknown"], ("error",))
    if failing:
        return Requirement(label, "fail", failing.title)
    if "spf.unknown" in codes:
        return Requirement(label, "unknown", next(f.title for f in spf if f.code == "spf.unknown"))
    if "spf.authorized" in codes:
        return Requirement(label, "pass", next(f.title for f in spf if f.code == "spf.authorized"))
    return Requirement(label, "unknown", "SPF is valid, but SMTP+ does not know how this relay "
                       "sends (set RELAY_EGRESS_IPS or RELAY_SPF_INCLUDE)")


def dkim_state(domain: SendingDomain) -> Requirement:
    label = "DKIM passes"
    if not domain.is_active:
        return Requirement(label, "fail", f"{domain.display} is not verified: the relay "
                           "does not sign (or send) for it")
    # .all() and not .filter(): a page that prefetched the keys asks the database nothing.
    keys = [k for k in domain.dkim_keys.all() if k.state == DkimKeyState.ACTIVE]
    if any(k.dns_status == "match" for k in keys):
        key = next(k for k in keys if k.dns_status == "match")
        return Requirement(label, "pass", f"{key.record_name} is published and matches")
    if not keys:
        return Requirement(label, "fail", "the domain has no active DKIM key")
    if any(k.dns_status.startswith("error") or not k.dns_status for k in keys):
        return Requirement(label, "unknown", "the DKIM record could not be checked yet")
    return Requirement(label, "fail", f"{keys[0].record_name} is {keys[0].dns_status} in DNS")


def dmarc_state(findings: list[Finding]) -> Requirement:
    dmarc = [f for f in findings if f.check == dmarchealth.CHECK]
    codes = {f.code for f in dmarc}
    label = "A DMARC record with at least p=none"
    if not dmarc:
        return Requirement(label, "unknown", "DMARC has not been checked yet")
    if "dmarc.unknown" in codes:
        return Requirement(label, "unknown", next(f.title for f in dmarc if f.code == "dmarc.unknown"))
    applied = next((f for f in dmarc if f.code in ("dmarc.p_none", "dmarc.p_quarantine",
                                                    "dmarc.p_reject")), None)
    if applied is None:
        failing = _first(dmarc, ("error",))
        return Requirement(label, "fail", failing.title if failing else "no usable DMARC record")
    return Requirement(label, "pass", applied.title)


def provider_verdicts(domain: SendingDomain, findings: list[Finding] | None = None
                      ) -> list[Verdict]:
    """A verdict per mailbox provider rule, from `findings` (default: the stored ones)."""
    findings = stored_findings(domain) if findings is None else findings
    spf, dkim, record = spf_state(findings), dkim_state(domain), dmarc_state(findings)
    either = (spf, dkim)
    aligned = Requirement("DMARC passes (SPF or DKIM, aligned with From:)",
                          _combine(either, any_of=True),
                          "; ".join(f"{r.label.split()[0]}: {r.why}" for r in either))
    bulk = (spf, dkim, record, aligned)
    rules = [
        ("Any receiver", "DMARC evaluation", (aligned,), False, "DMARC at any receiver"),
        ("Gmail", "all senders, since February 2024: SPF or DKIM", either, True,
         "Gmail (all senders)"),
        ("Gmail", "bulk senders (5,000+ messages a day), since February 2024", bulk, False,
         "Gmail (bulk senders)"),
        ("Yahoo", "bulk senders, since February 2024", bulk, False, "Yahoo (bulk senders)"),
        ("Outlook.com", "high-volume senders (5,000+ messages a day), since May 2025",
         bulk, False, "Outlook.com (high-volume senders)"),
    ]
    return [Verdict(provider, rule, _combine(reqs, any_of=any_of), reqs, name)
            for provider, rule, reqs, any_of, name in rules]
