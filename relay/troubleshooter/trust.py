"""Troubleshooter check "Will recipients trust this user's mail?": sender authentication
of the domains the user sends from.

Since 2024 the large mailbox providers refuse or spam-folder mail without DKIM or SPF and
a DMARC record, so "delivered upstream" no longer means "arrives". For each domain the
user is authorized for, this reads — from the database only, never DNS, so the page stays
fast and works when DNS does not — the account's sending domain that covers it: whether it
is verified (only then does the relay sign for it), its DKIM key, and the SPF and DMARC
findings of its last check (`accounts.domains.health`). Each problem comes with its fix; the
domain's page has "Check now" to read DNS again.
"""

from __future__ import annotations

from datetime import datetime

from django.urls import NoReverseMatch, reverse

from accounts.domains.findings import Finding
from accounts.domains.health import dkim_state, provider_verdicts, stored_findings
from accounts.models import SendingDomain, SmtpUser
from accounts.senders import domain_to_unicode
from relay.troubleshooter.base import (
    MAX_SHOWN,
    NODATA,
    OK,
    PROBLEM,
    Action,
    CheckResult,
    Facts,
    Fix,
    when,
)

KEY = "trust"
TITLE = "Will recipients trust this user's mail?"


def domain_page(domain: SendingDomain | None) -> str | None:
    """The console page of a sending domain (or the list of them), if the console has one."""
    try:
        if domain is None:
            return reverse("accounts:domain_list")
        return reverse("accounts:domain_detail", args=[domain.pk])
    except NoReverseMatch:
        return None


def covering(domain: str, sending: list[SendingDomain]) -> SendingDomain | None:
    """The account's sending domain for `domain`: itself, or a parent that covers it."""
    exact = next((sd for sd in sending if sd.domain == domain), None)
    return exact or next((sd for sd in sending if sd.covers(domain)), None)


def sending_from(facts: Facts, sending: list[SendingDomain]) -> list[str]:
    """The domains the user sends from: its authorized domains, then the domains of its
    authorized addresses that a sending domain of the account covers (an address at
    someone else's domain, like a mailbox provider's, is not the account's to sign)."""
    names = [domain for domain, _ in facts.domains]
    for email in facts.emails:
        domain = email.rpartition("@")[2].lower()
        if domain not in names and covering(domain, sending) is not None:
            names.append(domain)
    return names


def _fix_line(finding: Finding) -> str:
    line = f"{finding.title}."
    if finding.fix:
        line += f" Publish: {finding.fix}" if finding.record_name else f" {finding.fix}"
    return line


def _domain_facts(shown: str, sd: SendingDomain) -> tuple[str, list[str]]:
    """(status, evidence lines) for one verified sending domain."""
    lines: list[str] = []
    status = OK
    dkim = dkim_state(sd)
    if dkim.result != "pass":
        status = PROBLEM if dkim.result == "fail" else NODATA
        lines.append(f"{shown} — DKIM: {dkim.why}. Publish the DKIM record shown on the "
                     "domain's page, then check it.")
    if sd.last_checked_at is None:
        lines.append(f"{shown}: SPF and DMARC not checked yet — use Check now on its page.")
        return (PROBLEM if status == PROBLEM else NODATA), lines
    findings = stored_findings(sd)
    for finding in findings:
        if finding.severity == "error":
            status = PROBLEM
            lines.append(f"{shown} — {finding.check.upper()}: {_fix_line(finding)}")
        elif finding.severity == "unknown":
            status = status if status == PROBLEM else NODATA
            lines.append(f"{shown} — {finding.check.upper()}: {finding.title} (at the last "
                         f"check, {when(sd.last_checked_at)}).")
    for finding in findings:
        if finding.severity == "warning":
            lines.append(f"{shown} — {finding.check.upper()} (warning): {_fix_line(finding)}")
    failing = [v.name for v in provider_verdicts(sd, findings) if v.result == "fail"]
    if failing:
        status = PROBLEM
        lines.append(f"{shown} would fail: {', '.join(failing)}.")
    elif status == OK:
        lines.append(f"{shown}: verified, DKIM-signed, SPF and DMARC pass every provider "
                     f"rule (checked {when(sd.last_checked_at)}).")
    return status, lines


def check_trust(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    facts = facts or Facts(user, now)
    sending = list(SendingDomain.objects.filter(account_id=user.account_id)
                   .prefetch_related("dkim_keys"))
    names = sending_from(facts, sending)
    if not names:
        return CheckResult(KEY, NODATA, TITLE, [
            "The user sends from no domain of the account (addresses at other providers "
            "are authenticated by those providers), so there is no sending domain to check."])
    statuses: list[str] = []
    evidence: list[str] = []
    actions: list[Action] = []
    for name in names[:MAX_SHOWN]:
        shown = domain_to_unicode(name)
        sd = covering(name, sending)
        if sd is None:
            statuses.append(PROBLEM)
            evidence.append(f"{shown} is not a sending domain of the account: the relay does "
                            "not DKIM-sign its mail and nobody checks its SPF and DMARC. Add "
                            "it as a sending domain and verify it.")
            url = domain_page(None)
            if url:
                actions.append(Action(f"Add {shown} as a sending domain", url))
            continue
        if not sd.is_active:
            statuses.append(PROBLEM)
            evidence.append(f"{shown}: the sending domain {sd.display} is "
                            f"{sd.get_status_display().lower()}: the "
                            "relay does not sign for it. Publish its verification record and "
                            "check it.")
        else:
            status, lines = _domain_facts(shown, sd)
            statuses.append(status)
            evidence += lines
        url = domain_page(sd)
        if url and statuses[-1] != OK:
            actions.append(Action(f"Open {sd.display} and check now", url,
                                  primary=statuses[-1] == PROBLEM))
    if len(names) > MAX_SHOWN:
        evidence.append(f"… and {len(names) - MAX_SHOWN} more domains (not checked here).")
    if PROBLEM in statuses:
        return CheckResult(KEY, PROBLEM, "Recipients may not trust this user's mail", evidence,
                           Fix("Fix each problem above on the domain's page: publish or "
                               "change the records shown, then check again. Mail that fails "
                               "these checks is refused or goes to spam at Gmail, Yahoo and "
                               "Outlook.com even though the relay delivered it.", actions))
    if NODATA in statuses:
        return CheckResult(KEY, NODATA, TITLE, evidence,
                           Fix("Check the domains now to see how recipients judge them.",
                               actions))
    return CheckResult(KEY, OK, "Recipients can trust this user's mail", evidence)
