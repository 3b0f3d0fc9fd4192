"""Sending domains: the proof that an account owns a domain, and the checks of its DNS.

An account proves it owns a domain by publishing `_smtpplus.<domain> TXT
"smtpplus-verification=<token>"`. A dedicated name rather than the domain's own TXT
records: it never collides with the apex's SPF record or the other services' verification
strings there, it is removed in one line once it is no longer wanted, and it can be a
CNAME to a name the account's DNS team manages elsewhere.

This module decides and never writes: which findings a check gives, whether the token is
published, who else owns the domain. The state changes (verified, lapsed, transferred),
their audit rows and their events are `accounts.actions.domains`'.

A check of a domain is the list `CHECKS` of functions `(sending_domain, resolver) ->
list[Finding]`; other checks (DKIM, SPF, DMARC) add themselves with `register_check()`,
and the console, the CLI and the alerts show whatever they find.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import dns.resolver
from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from accounts.domains.findings import Finding, worst
from accounts.models import (
    AuthorizedDomain,
    AuthorizedEmail,
    DomainStatus,
    SendingDomain,
    VerifiedHow,
)
from accounts.senders import verification_required
from smtpplus.addresses import domain_to_unicode
from smtpplus.dns import TxtLookup, lookup_txt

VERIFICATION_LABEL = "_smtpplus"
VERIFICATION_PREFIX = "smtpplus-verification="
CHECK_NAME = "verification"

CheckFunction = Callable[[SendingDomain, dns.resolver.Resolver], list[Finding]]
# Run in order by every check of a domain (`accounts.actions.domains.check_domain`).
CHECKS: list[CheckFunction] = []


def register_check(check: CheckFunction) -> CheckFunction:
    """Add a check that every check of a domain runs (usable as a decorator)."""
    if check not in CHECKS:
        CHECKS.append(check)
    return check


def new_token() -> str:
    return secrets.token_hex(16)


def zone_line(name: str, value: str) -> str:
    """The record as one line of a zone file (TTL left to the zone's default)."""
    return f'{name}. IN TXT "{value}"'


def token_lookup(domain: SendingDomain, resolver: dns.resolver.Resolver) -> TxtLookup:
    return lookup_txt(domain.verification_name, resolver)


def token_published(domain: SendingDomain, lookup: TxtLookup) -> bool:
    """Whether one of the TXT records found is this domain's token (exactly)."""
    return lookup.found and any(r.strip() == domain.verification_value for r in lookup.records)


def other_owner(domain: SendingDomain) -> SendingDomain | None:
    """Another account's row of this domain that owns it (verified by DNS or by an
    operator); rows verified at upgrade do not own a domain."""
    return (
        SendingDomain.objects.select_related("account")
        .filter(domain=domain.domain, status=DomainStatus.VERIFIED)
        .exclude(verified_how=VerifiedHow.UPGRADE)
        .exclude(account_id=domain.account_id)
        .first()
    )


def owned_elsewhere_message(domain: SendingDomain) -> str:
    return (
        f"{domain.display} is already verified by another account; if it is yours, ask "
        "the operator to transfer it (manage.py domain transfer)"
    )


def lapse_deadline(domain: SendingDomain) -> datetime | None:
    """When a DNS-verified domain whose record is gone lapses (None: it is not due to)."""
    if domain.record_missing_since is None:
        return None
    return domain.record_missing_since + timedelta(seconds=settings.SMTPPLUS_DOMAIN_LAPSE_GRACE)


def can_lapse(domain: SendingDomain) -> bool:
    """Only a domain proved by its DNS record lapses when the record goes: one verified at
    upgrade or by an operator was never proved by it."""
    return domain.status == DomainStatus.VERIFIED and domain.verified_how == VerifiedHow.DNS


def record_fix(domain: SendingDomain) -> dict[str, str]:
    return {
        "fix": zone_line(domain.verification_name, domain.verification_value),
        "record_name": domain.verification_name,
        "record_type": "TXT",
    }


def verification_finding(
    domain: SendingDomain, lookup: TxtLookup, now: datetime | None = None
) -> Finding:
    """What the token lookup means for this domain, in the console's words."""
    now = now or timezone.now()
    name = domain.display
    if not lookup.ran:
        return Finding(
            CHECK_NAME, "unknown", f"Could not check the verification record of {name}",
            f"{lookup.describe()}. Nothing changes until a check can run: this is not "
            "read as a missing record.",
        )
    if token_published(domain, lookup):
        if domain.status == DomainStatus.VERIFIED or other_owner(domain) is None:
            return Finding(CHECK_NAME, "ok", f"{name} is verified by its DNS record",
                           f"{domain.verification_name} has the token.")
        return Finding(CHECK_NAME, "error", f"{name} is verified by another account",
                       owned_elsewhere_message(domain) + ".")
    found = (f"{lookup.describe()}, but none is this domain's token."
             if lookup.found else f"{lookup.describe()}.")
    if domain.status == DomainStatus.VERIFIED and domain.verified_how != VerifiedHow.DNS:
        how = VerifiedHow(domain.verified_how).label.lower() if domain.verified_how else ""
        return Finding(
            CHECK_NAME, "info", f"{name} is verified ({how}), not by DNS",
            f"{found} It stays verified; publish the record to prove it by DNS (the "
            "first account to do so owns the domain).", **record_fix(domain),
        )
    if domain.status == DomainStatus.VERIFIED:
        since = domain.record_missing_since or now
        deadline = since + timedelta(seconds=settings.SMTPPLUS_DOMAIN_LAPSE_GRACE)
        return Finding(
            CHECK_NAME, "error", f"The verification record of {name} is gone",
            f"{found} Its SMTP+ users can still send as it until "
            f"{deadline:%Y-%m-%d %H:%M} UTC; then it lapses and the relay refuses it. "
            "Publish the record again.", **record_fix(domain),
        )
    what = "lapsed: its record is gone" if domain.status == DomainStatus.LAPSED else "not verified yet"
    return Finding(
        CHECK_NAME, "error", f"{name} is {what}",
        f"{found} Publish this TXT record in the DNS of {name}, then check again. Until "
        "then the relay refuses it as a sender.", **record_fix(domain),
    )


def findings_by_check(result: dict[str, object]) -> dict[str, list[Finding]]:
    """The findings of a stored `check_result`, grouped by check name."""
    grouped: dict[str, list[Finding]] = {}
    raw = result.get("findings") if isinstance(result, dict) else None
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, dict):
            finding = Finding.from_dict(item)
            grouped.setdefault(finding.check, []).append(finding)
    return grouped


def newly_broken(before: dict[str, object], after: list[Finding]) -> list[Finding]:
    """The error findings of checks that had no error at the previous check (a check that
    did not run before does not count: there was nothing to break)."""
    previous = findings_by_check(before)
    broken: list[Finding] = []
    for finding in after:
        old = previous.get(finding.check)
        if finding.severity != "error" or not old:
            continue
        if not any(f.severity == "error" for f in old):
            broken.append(finding)
    return broken


def due_domains(now: datetime | None = None, limit: int = 500) -> list[SendingDomain]:
    """Domains not checked for SMTPPLUS_DOMAIN_RECHECK_INTERVAL seconds, oldest first."""
    now = now or timezone.now()
    since = now - timedelta(seconds=settings.SMTPPLUS_DOMAIN_RECHECK_INTERVAL)
    rows = SendingDomain.objects.select_related("account").filter(
        Q(last_checked_at__isnull=True) | Q(last_checked_at__lte=since))
    return list(rows.order_by(F("last_checked_at").asc(nulls_first=True), "id")[:limit])


def verified_domains(account_id: int) -> list[tuple[str, bool]]:
    """(domain, include_subdomains) of the account's verified sending domains."""
    return list(SendingDomain.objects.filter(account_id=account_id, status=DomainStatus.VERIFIED)
                .values_list("domain", "include_subdomains"))


def ownership_problem(account_id: int, domain: str, include_subdomains: bool = False) -> str:
    """Why the account's SMTP+ users may not be authorized for `domain` ("" if they may):
    it must be a verified sending domain of the account, or a subdomain of one that opts
    in (and so must every subdomain, to authorize them too)."""
    rows = list(SendingDomain.objects.filter(account_id=account_id))
    shown = domain_to_unicode(domain)
    for row in rows:
        if row.is_active and row.covers(domain):
            if include_subdomains and not (row.include_subdomains and (
                    domain == row.domain or domain.endswith("." + row.domain))):
                return (f"its subdomains are not covered: turn on \"include subdomains\" for "
                        f"the sending domain {row.display} first, or authorize {shown} alone")
            return ""
    for row in rows:
        if row.domain == domain or domain.endswith("." + row.domain):
            what = "lapsed" if row.status == DomainStatus.LAPSED else "not verified yet"
            if row.domain == domain:
                return (f"{shown} is a sending domain of this account but {what}: publish its "
                        "TXT record and check it on the Sending domains page")
            if row.is_active:
                return (f"{shown} is a subdomain of the sending domain {row.display}, which "
                        "does not include subdomains: turn that on for it, or add "
                        f"{shown} as a sending domain")
    return (f"{shown} is not a sending domain of this account: add it as a sending domain "
            "and verify it first (Sending domains page, or manage.py domain add)")


def authorizations_at(
    domain: SendingDomain,
) -> tuple[list[AuthorizedDomain], list[AuthorizedEmail]]:
    """The authorizations of the account's SMTP+ users that rest on this sending domain,
    and go when it is removed: its authorized domains (itself and its subdomains) and the
    addresses at them that were never confirmed by their link (an address confirmed by
    its owner stands on its own, like one at a mailbox provider). Not those that another
    sending domain of the account covers (a subdomain that is a sending domain of its own,
    whatever its status). None when SMTPPLUS_SENDER_VERIFICATION is off: authorizations
    do not rest on sending domains then."""
    if not verification_required():
        return [], []
    name = domain.domain
    others = list(SendingDomain.objects.filter(account_id=domain.account_id)
                  .exclude(pk=domain.pk))

    def rests_here(at: str) -> bool:
        at = at.lower()
        return (at == name or at.endswith("." + name)) and not any(o.covers(at) for o in others)

    found_domains = [
        d for d in AuthorizedDomain.objects.select_related("smtp_user")
        .filter(smtp_user__account_id=domain.account_id)
        .filter(Q(domain=name) | Q(domain__endswith="." + name)).order_by("smtp_user__username", "domain")
        if rests_here(d.domain)]
    found_emails = [
        e for e in AuthorizedEmail.objects.select_related("smtp_user")
        .filter(smtp_user__account_id=domain.account_id, confirmed_at__isnull=True)
        .filter(Q(email__iendswith="@" + name) | Q(email__iendswith="." + name))
        .order_by("smtp_user__username", "email")
        if rests_here(e.email.rpartition("@")[2])]
    return found_domains, found_emails


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def domain_data(domain: SendingDomain) -> dict[str, Any]:
    """A sending domain as `manage.py domain` and the API show it."""
    findings = [f for group in findings_by_check(domain.check_result).values() for f in group]
    return {
        "domain": domain.domain,
        "display": domain.display,
        "account": domain.account.slug,
        "status": domain.status,
        "verified_how": domain.verified_how,
        "verified_at": _when(domain.verified_at),
        "include_subdomains": domain.include_subdomains,
        "last_checked_at": _when(domain.last_checked_at),
        "record_missing_since": _when(domain.record_missing_since),
        "lapses_at": _when(lapse_deadline(domain)) if can_lapse(domain) else None,
        "verification_record": {
            "name": domain.verification_name,
            "type": "TXT",
            "value": domain.verification_value,
            "zone_line": zone_line(domain.verification_name, domain.verification_value),
        },
        "verdict": worst(findings) if findings else None,
        "findings": [f.to_dict() for f in findings],
    }
