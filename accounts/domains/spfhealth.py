"""The SPF findings of a sending domain, in the console's words, each with its fix.

`spf_findings(domain)` reads the domain's record (`accounts.domains.spfrecord`) and says, worst
first: no record / two records / a syntax error / too many DNS lookups / void lookups
(errors: receivers' SPF fails for every message), `+all` / `?all` / no `all` / `ptr`
(warnings), and whether the record authorizes how this relay sends — each egress
address evaluated by pyspf, the smarthost's `include:` looked for through the whole tree
— or, when neither is configured, what to set. The fix of an existing record is the
changed record (publish it *in place of* the current one: a second record breaks SPF).

Codes (`Finding.code`) let the provider verdicts read stored findings: "spf.valid",
"spf.authorized", "spf.unconfigured" and the problems' own codes.
"""

from __future__ import annotations

from dataclasses import replace

import dns.resolver

from accounts.domains.findings import Finding, Severity, ordered
from accounts.domains.spfrecord import (
    MAX_LOOKUPS,
    MAX_VOID_LOOKUPS,
    PROBE_ADDRESS,
    Walk,
    check_address,
    egress_terms,
    merged,
    probe_addresses,
    relay_terms,
    replace_all,
    shown,
    spf_records,
    with_terms,
    without_terms,
    zone_line,
)
from smtpplus.dns import lookup_txt, make_resolver
from smtpplus.egress import Network, egress_networks, spf_include

CHECK = "spf"
# Codes of findings after which receivers' SPF fails (or cannot tell) for every message.
BROKEN = ("spf.none", "spf.multiple", "spf.syntax", "spf.include_error", "spf.too_many_lookups",
          "spf.void_lookups", "spf.receiver_error", "spf.unknown")
REPLACE = "Publish it in place of the current record (a domain must have one SPF record)."


def _finding(severity: Severity, code: str, title: str, explanation: str, domain: str = "",
             record: str = "") -> Finding:
    fix = zone_line(domain, record) if record else ""
    return Finding(CHECK, severity, title, explanation, fix,
                   domain if record else "", "TXT" if record else "", code)


def _unknown(domain: str, why: str) -> Finding:
    return _finding(
        "unknown", "spf.unknown", f"Could not check the SPF record of {domain}",
        f"{why}. This is not a missing record: DNS did not answer, so nothing can be said "
        "about SPF until a check can run. Check again later.")


def spf_findings(domain: str, resolver: dns.resolver.Resolver | None = None) -> list[Finding]:
    """Every SPF finding of `domain` (an A-label), worst first."""
    resolver = resolver or make_resolver()
    lookup = lookup_txt(domain, resolver)
    if not lookup.ran:
        return [_unknown(domain, lookup.describe())]
    records = spf_records(lookup.records)
    if not records:
        return [_no_record(domain), *_unconfigured()]
    if len(records) > 1:
        shown = " and ".join(f'"{r}"' for r in records)
        return [_finding(
            "error", "spf.multiple", f"{domain} has {len(records)} SPF records",
            f"It publishes {shown}. With more than one, receivers stop with a permanent "
            "error (permerror) and SPF fails for every message. Replace them with this "
            "one record, which keeps the terms of each.",
            domain, with_terms(merged(records), relay_terms())), *_unconfigured()]
    record = records[0]
    walk = Walk(domain, resolver)
    walk.run(record)
    findings = _structure(domain, record, walk)
    broken = any(f.code in BROKEN for f in findings)
    if not broken:
        findings += _receiver_view(domain, walk, resolver)
        broken = any(f.code in BROKEN for f in findings)
    findings += _policy(domain, record, walk)
    erroneous = any(f.code in BROKEN and f.severity == "error" for f in findings)
    about_relay, lacking = _authorization(domain, record, walk, resolver, erroneous)
    findings += about_relay
    if not broken:
        findings.append(_finding(
            "ok", "spf.valid", f"{domain} has one valid SPF record",
            f'"{record}" — {walk.lookup_count} of the {MAX_LOOKUPS} DNS lookups an '
            "evaluation may make."))
    return ordered(_one_record_to_publish(domain, record, walk, lacking, findings, resolver))


def corrected(domain: str, record: str, walk: Walk, lacking: list[str],
              resolver: dns.resolver.Resolver) -> str:
    """The domain's record with every change the findings ask of it at once, and still
    authorizing this relay (a record that let it in only by +all gets its addresses)."""
    drop = [term for where, term, _ in walk.syntax + walk.problems if where == domain]
    fixed = without_terms(record, drop + walk.void_top + walk.ptr)
    if walk.all_term and walk.all_term[0] == domain and walk.all_term[2] in ("+all", "?all"):
        fixed = replace_all(fixed, "~all")
    elif walk.all_term is None and walk.policy_record[0] == domain:
        fixed = replace_all(fixed, "~all")
    fixed = with_terms(fixed, lacking)
    if fixed == record:
        return fixed
    still_out = [net for net in egress_networks()
                 if any(check_address(ip, domain, resolver, fixed)[0] in ("fail", "softfail",
                                                                          "neutral")
                        for ip in probe_addresses(net))]
    return with_terms(fixed, egress_terms(still_out))


def _one_record_to_publish(domain: str, record: str, walk: Walk, lacking: list[str],
                           findings: list[Finding], resolver: dns.resolver.Resolver
                           ) -> list[Finding]:
    """Every finding that changes the domain's own record offers the record with all the
    changes at once: publishing one finding's record would undo another's."""
    own = [f for f in findings if f.fix and f.record_name == domain]
    if not own:
        return findings
    fix = zone_line(domain, corrected(domain, record, walk, lacking, resolver))
    note = " The record shown makes every change listed for this record at once." \
        if len(own) > 1 else ""
    return [replace(f, fix=fix, explanation=f.explanation + note) if f in own else f
            for f in findings]


def _no_record(domain: str) -> Finding:
    terms = relay_terms()
    record = " ".join(["v=spf1", *(terms or ["ip4:<the address this relay sends from>"]),
                       "~all"])
    return _finding(
        "error", "spf.none", f"{domain} has no SPF record",
        "Receivers cannot tell which servers may send as this domain, and the large "
        "mailbox providers require SPF or DKIM for all mail (and both for bulk mail). "
        "Publish this TXT record at the domain; if the domain also sends from other "
        "services (an office suite, a newsletter tool), add their include: terms to it.",
        domain, record)


def _structure(domain: str, record: str, walk: Walk) -> list[Finding]:
    findings: list[Finding] = []
    for code, problems in (("spf.syntax", walk.syntax), ("spf.include_error", walk.problems)):
        findings += _problems(domain, record, code, problems)
    if walk.lookup_count > MAX_LOOKUPS:
        detail = ", ".join(f"{term} {n}" for term, n in walk.lookups.items())
        findings.append(_finding(
            "error", "spf.too_many_lookups",
            f"The SPF record of {domain} needs {'at least ' if walk.truncated else ''}"
            f"{walk.lookup_count} DNS lookups (at most {MAX_LOOKUPS})",
            f"Each include, a, mx, ptr, exists and redirect costs one, counted through every "
            f"included record ({detail}). Past {MAX_LOOKUPS} receivers stop with a permanent "
            "error (permerror) and SPF fails for every message. Remove the terms of "
            "services you no longer use, and replace a and mx by the ip4:/ip6: addresses "
            "they stand for, until at most 10 lookups are left."))
    if walk.void:
        names = ", ".join(walk.void)
        over = len(walk.void) > MAX_VOID_LOOKUPS
        fixed = without_terms(record, walk.void_top) if walk.void_top else ""
        findings.append(_finding(
            "error" if over else "warning", "spf.void_lookups" if over else "spf.void_lookup",
            f"{len(walk.void)} term(s) of the SPF record of {domain} find nothing in DNS",
            f"{names}: the name has no address, MX or SPF record (a void lookup). "
            + (f"Past {MAX_VOID_LOOKUPS} receivers stop with a permanent error (permerror) "
               "and SPF fails for every message. " if over else
               f"Receivers allow {MAX_VOID_LOOKUPS}, then fail SPF for every message. ")
            + (f"This is the record without them. {REPLACE}" if fixed else
               "Remove them from the records that name them."),
            domain, fixed))
    if walk.unknown:
        findings.append(_unknown(domain, "Part of the SPF record could not be followed: "
                                 + "; ".join(walk.unknown)))
    return findings


def _problems(domain: str, record: str, code: str,
              problems: list[tuple[str, str, str]]) -> list[Finding]:
    findings: list[Finding] = []
    for where, term, why in problems:
        if where == domain:
            findings.append(_finding(
                "error", code, f"The SPF record of {domain} has an error: {term}",
                f'"{term}": {why}. Receivers stop at it with a permanent error (permerror) '
                f"and SPF fails for every message. This is the record without it. {REPLACE}",
                domain, without_terms(record, [term])))
        else:
            findings.append(_finding(
                "error", code, f"An SPF record that {domain} includes has an error",
                f'"{term}" in the record of {where}: {why}. Receivers stop with a permanent '
                f"error (permerror), so SPF fails for every message of {domain}. Ask the "
                f"owner of {where} to fix it, or remove what includes it from your record."))
    return findings


def _receiver_view(domain: str, walk: Walk, resolver: dns.resolver.Resolver) -> list[Finding]:
    """pyspf's evaluation of an address no record names: every term runs, as a receiver
    runs them, so an error the walk did not explain still shows."""
    result, why = check_address(PROBE_ADDRESS, domain, resolver)
    if result == "permerror":
        return [_finding(
            "error", "spf.receiver_error", f"Receivers find an error in the SPF record of {domain}",
            f"Evaluating it as a receiver does: {why}. SPF fails for every message until "
            "the record is fixed.")]
    if result == "temperror":
        return [_unknown(domain, why)]
    return []


def _policy(domain: str, record: str, walk: Walk) -> list[Finding]:
    findings: list[Finding] = []
    if walk.ptr:
        findings.append(_finding(
            "warning", "spf.ptr", f"The SPF record of {domain} uses ptr",
            "ptr is slow, unreliable and discouraged (RFC 7208 5.5); many receivers skip it. "
            f"Name the addresses with ip4:/ip6: instead. {REPLACE}",
            domain, without_terms(record, walk.ptr)))
    if walk.all_term is None:
        where, last = walk.policy_record
        return findings + [_finding(
            "warning", "spf.no_all", f"The SPF record of {domain} does not end with an all term",
            "Mail from servers the record does not name gets a neutral result: the record "
            f"does not say they are not allowed. End it with ~all (or -all). {REPLACE}",
            where, replace_all(last, "~all"))]
    where, policy_record, qualifier = walk.all_term
    if qualifier not in ("+all", "?all"):
        return findings
    what = ("authorizes every server on the internet to send as this domain"
            if qualifier == "+all" else "says nothing about servers it does not name (neutral)")
    return findings + [_finding(
        "warning", "spf.permissive_all",
        f"The SPF record of {domain} ends with {qualifier}",
        f"{qualifier} {what}, so SPF does not protect the domain from forgery. Use ~all "
        f"(softfail) or -all (fail). {REPLACE}",
        where, replace_all(policy_record, "~all"))]


def _authorization(domain: str, record: str, walk: Walk, resolver: dns.resolver.Resolver,
                   broken: bool) -> tuple[list[Finding], list[str]]:
    """The findings about this relay, and the terms the record lacks to authorize it."""
    networks, include = egress_networks(), spf_include()
    if not networks and not include:
        return _unconfigured(), []
    findings: list[Finding] = []
    missing: list[tuple[Network, str]] = []
    passed: list[str] = []
    unknown: list[str] = []
    for net in networks:
        results = [check_address(ip, domain, resolver) for ip in probe_addresses(net)]
        if all(result == "pass" for result, _ in results):
            passed.append(shown(net))
        elif any(result == "temperror" for result, _ in results):
            unknown.append(f"{net}: {next(w for r, w in results if r == 'temperror')}")
        else:
            got = next(result for result, _ in results if result != "pass")
            missing.append((net, got))
    if include and include not in walk.targets:
        findings.append(_finding(
            "error", "spf.include_missing",
            f"The SPF record of {domain} does not include {include}",
            f"This relay delivers through a smarthost whose servers are named by "
            f"include:{include}; without it receivers see them as unauthorized and SPF "
            f"fails. This is the record with it. {REPLACE}",
            domain, with_terms(record, [f"include:{include}"])))
    elif include:
        findings.append(_finding(
            "ok", "spf.authorized", f"The SPF record of {domain} includes {include}",
            "It authorizes the smarthost this relay delivers through."))
    if missing:
        findings.append(_not_authorized(domain, record, missing, broken))
    elif passed:
        findings.append(_finding(
            "ok", "spf.authorized", f"The SPF record of {domain} authorizes this relay",
            f"Mail sent from {', '.join(passed)} passes SPF."))
    if unknown:
        findings.append(_unknown(domain, "; ".join(unknown)))
    lacking = egress_terms([net for net, _ in missing])
    if include and include not in walk.targets:
        lacking.append(f"include:{include}")
    return findings, lacking


def _not_authorized(domain: str, record: str, missing: list[tuple[Network, str]],
                    broken: bool) -> Finding:
    listed = ", ".join(f"{shown(net)} ({result})" for net, result in missing)
    changed = with_terms(record, egress_terms([net for net, _ in missing]))
    if changed == record.strip():
        # The record names the addresses already: only its error (above) stands in the way.
        return _finding(
            "error", "spf.not_authorized",
            f"The SPF record of {domain} does not authorize this relay's address",
            f"Evaluated as a receiver would, mail sent from {listed} does not pass: the "
            "record names it, but its error (above) makes SPF fail. Fix that error.")
    return _finding(
        "error", "spf.not_authorized",
        f"The SPF record of {domain} does not authorize this relay's address",
        f"Evaluated as a receiver would, mail sent from {listed} does not pass"
        + (", and the record has an error (above) too" if broken else "")
        + f". This is the record with this relay's addresses. {REPLACE}",
        domain, changed)


def _unconfigured() -> list[Finding]:
    """The info finding that asks for the relay settings, when neither is set."""
    if egress_networks() or spf_include():
        return []
    return [_finding(
        "info", "spf.unconfigured", "SMTP+ does not know how this relay sends",
        "Set RELAY_EGRESS_IPS (the public addresses this relay delivers from) or "
        "RELAY_SPF_INCLUDE (the include: domain of the smarthost it delivers through), so "
        "this check can tell whether the SPF record authorizes this relay.")]
