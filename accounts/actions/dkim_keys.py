"""The DKIM keys of a sending domain: creating them, rotating them, and following what DNS
publishes.

A key's life: *pending* (made; its record is to be published) → *active* (its record
was found published and matching: mail is signed with it) → *retiring* (a newer key of
the same algorithm became active; the old record stays published for
`SMTPPLUS_DKIM_ROTATION_GRACE` so mail signed with it still verifies on arrival) →
*retired* (its record may be removed; its private part is erased).

A rotation makes a new pending key beside the active one — both records are published
at once — and the switch happens at the first check that finds the new record: never
before, so no message is signed with a key that receivers cannot find. Checks run from
`manage.py domain dkim-rotate|dkim-show --check` and from the domain checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import dns.resolver
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.audit import Actor
from accounts.domains.dkim import (
    Algorithm,
    DkimCheck,
    DkimRecord,
    compare_published,
    dkim_record,
    encrypt_private_key,
    generate_key,
    new_selector,
)
from accounts.domains.findings import Finding, Severity
from accounts.models import DkimKey, DkimKeyState, SendingDomain
from smtpplus.dns import lookup_txt, make_resolver

LIVE_STATES = (DkimKeyState.PENDING, DkimKeyState.ACTIVE, DkimKeyState.RETIRING)
# DkimKey.dns_status values (the CheckStatus of accounts.domains.dkim, "error: …" for one that
# could not run).
MATCH = "match"


def wanted_algorithms() -> tuple[Algorithm, ...]:
    return ("rsa", "ed25519") if settings.SMTPPLUS_DKIM_ED25519 else ("rsa",)


def record_of(key: DkimKey) -> DkimRecord:
    """The exact TXT record that publishes `key`."""
    return dkim_record(key.selector, key.sending_domain.domain, key.algorithm, key.public_key)


def live_keys(domain: SendingDomain) -> list[DkimKey]:
    """The keys whose records must be published (pending, active, retiring), oldest first."""
    return list(domain.dkim_keys.filter(state__in=LIVE_STATES).order_by("created", "id"))


def _create(domain: SendingDomain, algorithm: Algorithm, actor: Actor | None, why: str) -> DkimKey:
    generated = generate_key(algorithm)
    taken = set(domain.dkim_keys.values_list("selector", flat=True))
    key = DkimKey.objects.create(
        sending_domain=domain,
        selector=new_selector(timezone.localdate(), taken),
        algorithm=algorithm,
        private_key_encrypted=encrypt_private_key(generated.private_key),
        public_key=generated.public_key,
        state=DkimKeyState.PENDING,
    )
    audit.record(
        f"dkim.{why}", account=domain.account, actor=actor, target=key,
        details={"domain": domain.domain, "selector": key.selector, "algorithm": algorithm},
    )
    return key


@transaction.atomic
def ensure_keys(domain: SendingDomain, actor: Actor | None = None) -> list[DkimKey]:
    """Give `domain` a key of each configured algorithm it lacks; returns the new ones.
    Call it when a sending domain is added (and it is safe to call at any time)."""
    SendingDomain.objects.select_for_update().filter(pk=domain.pk).first()
    have = set(domain.dkim_keys.filter(state__in=LIVE_STATES).values_list("algorithm", flat=True))
    return [_create(domain, alg, actor, "create") for alg in wanted_algorithms() if alg not in have]


@transaction.atomic
def start_rotation(domain: SendingDomain, actor: Actor | None = None) -> list[DkimKey]:
    """A new pending key for each algorithm whose active key has no successor yet;
    returns the new keys ([] when a rotation is already under way)."""
    SendingDomain.objects.select_for_update().filter(pk=domain.pk).first()
    new: list[DkimKey] = []
    for algorithm in wanted_algorithms():
        states = set(domain.dkim_keys.filter(algorithm=algorithm).values_list("state", flat=True))
        if DkimKeyState.PENDING in states:
            continue  # the successor is made; it waits to be published
        new.append(_create(domain, algorithm, actor, "rotate"))
    return new


@dataclass(frozen=True)
class KeyCheck:
    key: DkimKey
    record: DkimRecord
    check: DkimCheck


def check_key(key: DkimKey, resolver: dns.resolver.Resolver | None = None) -> KeyCheck:
    """Look the key's record up in DNS and say whether it matches (no database write)."""
    record = record_of(key)
    found = lookup_txt(record.name, resolver)
    check = compare_published(
        found.status, found.records, found.error, name=record.name,
        algorithm=key.algorithm, public_key=key.public_key,
    )
    return KeyCheck(key, record, check)


def _dns_status(check: DkimCheck) -> str:
    if check.status == "could-not-check":
        return f"error: {check.detail}"[:200]
    return check.status


def refresh_keys(
    domain: SendingDomain,
    *,
    resolver: dns.resolver.Resolver | None = None,
    now: datetime | None = None,
    actor: Actor | None = None,
) -> list[KeyCheck]:
    """Check every live key's record, store what was found, and move the keys on:
    a pending key found published becomes active (the key it succeeds starts retiring),
    a retiring key past the grace period is retired. Returns the checks."""
    now = now or timezone.now()
    actor = actor or Actor.system("DKIM key check")
    resolver = resolver or make_resolver()
    # DNS first, outside the transaction: a slow server must not hold row locks.
    checks = [check_key(k, resolver) for k in live_keys(domain)]
    with transaction.atomic():
        SendingDomain.objects.select_for_update().filter(pk=domain.pk).first()
        for result in checks:
            key = result.key
            key.dns_status = _dns_status(result.check)
            key.last_checked_at = now
            key.save(update_fields=["dns_status", "last_checked_at"])
            if key.state == DkimKeyState.PENDING and result.check.status == MATCH:
                _activate(domain, key, now, actor)
        grace = timedelta(seconds=settings.SMTPPLUS_DKIM_ROTATION_GRACE)
        for key in domain.dkim_keys.filter(state=DkimKeyState.RETIRING):
            if key.retiring_since is not None and key.retiring_since + grace <= now:
                _retire(domain, key, now, actor)
    for result in checks:
        result.key.refresh_from_db()
    return checks


def _activate(domain: SendingDomain, key: DkimKey, now: datetime, actor: Actor) -> None:
    old = list(domain.dkim_keys.filter(algorithm=key.algorithm, state=DkimKeyState.ACTIVE))
    for previous in old:
        previous.state = DkimKeyState.RETIRING
        previous.retiring_since = now
        previous.save(update_fields=["state", "retiring_since"])
    key.state = DkimKeyState.ACTIVE
    key.activated_at = now
    key.save(update_fields=["state", "activated_at"])
    audit.record(
        "dkim.activate", account=domain.account, actor=actor, target=key,
        details={"domain": domain.domain, "selector": key.selector,
                 "replaces": [p.selector for p in old]},
    )


def _retire(domain: SendingDomain, key: DkimKey, now: datetime, actor: Actor) -> None:
    key.state = DkimKeyState.RETIRED
    key.retired_at = now
    # Nothing is signed with it any more: the private part need not be kept at all.
    key.private_key_encrypted = ""
    key.save(update_fields=["state", "retired_at", "private_key_encrypted"])
    audit.record(
        "dkim.retire", account=domain.account, actor=actor, target=key,
        details={"domain": domain.domain, "selector": key.selector},
    )


def findings(checks: list[KeyCheck]) -> list[Finding]:
    """What the console and the domain check say about each live key's record."""
    out: list[Finding] = []
    for result in checks:
        key, record, check = result.key, result.record, result.check
        label = f"DKIM key {key.selector} ({key.algorithm})"
        if check.status == MATCH:
            severity: Severity = "ok" if key.state != DkimKeyState.RETIRING else "info"
            title = f"{label} is published" + (
                " (retiring: keep the record until it is retired)"
                if key.state == DkimKeyState.RETIRING else "")
            out.append(Finding("dkim", severity, title, check.detail,
                               record_name=record.name, record_type="TXT"))
        elif check.status == "could-not-check":
            out.append(Finding("dkim", "unknown", f"{label} could not be checked", check.detail))
        else:
            active = key.state == DkimKeyState.ACTIVE
            title = (f"{label} is not published" if check.status == "missing"
                     else f"{label} does not match the published record")
            consequence = (
                " Mail is signed with this key: receivers cannot verify it until the record "
                "is fixed." if active else " Mail is signed with it once its record is found.")
            out.append(Finding(
                "dkim", "error" if active else "warning", title, check.detail + consequence,
                fix=record.quoted, record_name=record.name, record_type="TXT",
            ))
    return out


@dataclass(frozen=True)
class PublishRow:
    """One live key as the domain page lists it (templates/accounts/domains/_dkim_records.html)."""

    key: DkimKey
    record: DkimRecord
    retire_after: datetime | None  # a retiring key's record may be removed after this


def publish_rows(domain: SendingDomain) -> list[PublishRow]:
    """The records of the domain's live keys, for the console and the command line."""
    grace = timedelta(seconds=settings.SMTPPLUS_DKIM_ROTATION_GRACE)
    return [
        PublishRow(k, record_of(k), k.retiring_since + grace if k.retiring_since else None)
        for k in live_keys(domain)
    ]


def domain_check(domain: SendingDomain, resolver: dns.resolver.Resolver) -> list[Finding]:
    """The DKIM part of a domain check (`(domain, resolver) -> findings`): gives the domain
    its keys if it lacks them, checks their records and moves them on."""
    ensure_keys(domain)
    return findings(refresh_keys(domain, resolver=resolver))


# --- what the command line and the API show ------------------------------------------------
def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def key_data(row: PublishRow) -> dict[str, Any]:
    """A live key: its state and the record to publish (never its private part)."""
    key, record = row.key, row.record
    return {
        "selector": key.selector,
        "algorithm": key.algorithm,
        "state": key.state,
        "created": _when(key.created),
        "activated_at": _when(key.activated_at),
        "retiring_since": _when(key.retiring_since),
        "retire_after": _when(row.retire_after),
        "last_checked_at": _when(key.last_checked_at),
        "dns_status": key.dns_status,
        "record": {
            "name": record.name,
            "type": "TXT",
            "value": record.value,
            "strings": list(record.strings),
            "zone_line": record.zone_line,
        },
    }


def dkim_data(domain: SendingDomain, checks: list[KeyCheck] | None = None) -> dict[str, Any]:
    """The domain's DKIM keys and records (and, after a check, its findings)."""
    data: dict[str, Any] = {
        "domain": domain.domain,
        "account": domain.account.slug,
        "status": domain.status,
        "keys": [key_data(row) for row in publish_rows(domain)],
    }
    if checks is not None:
        data["findings"] = [f.to_dict() for f in findings(checks)]
    return data
