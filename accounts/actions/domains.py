"""Changes to sending domains, each with its audit row, its event and the relays told.

Adding, checking (which verifies or lapses), an operator's forced verification, a
transfer to another account and removal. Every change of whether a domain may be sent
as bumps the version of the SMTP+ users of the accounts concerned, so that sessions
already logged in to a relay re-check their senders. What the checks find and mean is
`accounts.domains.ownership`'.
"""

from __future__ import annotations

from datetime import datetime

import dns.resolver
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts import audit
from accounts.actions import dkim_keys
from accounts.audit import Actor
from accounts.domains import ownership
from accounts.domains.findings import Finding
from accounts.models import (
    Account,
    AuthorizedDomain,
    AuthorizedEmail,
    DomainEvent,
    DomainEventKind,
    DomainStatus,
    SendingDomain,
    SmtpUser,
    VerifiedHow,
)
from smtpplus.addresses import InvalidEntry, domain_to_unicode, normalize_domain
from smtpplus.dns import make_resolver


class DomainError(InvalidEntry):
    """A change to a sending domain that cannot be made; the message says why and what
    to do."""


def tell_relays(*account_ids: int) -> None:
    """Sessions of these accounts' SMTP+ users re-check their senders (`mark_changed`)."""
    SmtpUser.objects.filter(account_id__in=account_ids).update(version=F("version") + 1)


def _event(domain: SendingDomain, kind: str, reason: str, **details: object) -> DomainEvent:
    return DomainEvent.objects.create(
        account_id=domain.account_id, sending_domain=domain, domain=domain.domain, kind=kind,
        details={"reason": reason, **details},
    )


def _audit(action: str, sd: SendingDomain, actor: Actor | None, **details: object) -> None:
    audit.record(action, account=sd.account, actor=actor, target=sd, target_label=sd.display,
                 details={"domain": sd.domain, **details})


@transaction.atomic
def add_domain(
    account: Account, entry: str, *, include_subdomains: bool = False, actor: Actor | None = None
) -> SendingDomain:
    """Add an unverified sending domain with a new token and its DKIM key(s), so that its
    page shows every record to publish at once; the entry is normalised like authorized
    domains (IDN, case, trailing dot)."""
    name = normalize_domain(entry)
    if SendingDomain.objects.filter(account=account, domain=name).exists():
        raise DomainError(f"{domain_to_unicode(name)} is already a sending domain of this account")
    domain = SendingDomain.objects.create(
        account=account, domain=name, token=ownership.new_token(),
        include_subdomains=include_subdomains,
    )
    _audit("domain.add", domain, actor, include_subdomains=include_subdomains)
    dkim_keys.ensure_keys(domain, actor)
    return domain


def _claim(domain: SendingDomain, how: str, actor: Actor | None, now: datetime) -> None:
    """Make `domain` its account's, verified `how`; other accounts' rows of the domain
    verified at upgrade become unverified (the first to prove it keeps it)."""
    others = list(
        SendingDomain.objects.select_related("account")
        .filter(domain=domain.domain, status=DomainStatus.VERIFIED, verified_how=VerifiedHow.UPGRADE)
        .exclude(pk=domain.pk)
    )
    for other in others:
        other.status = DomainStatus.UNVERIFIED
        other.verified_how = ""
        other.verified_at = None
        other.save(update_fields=["status", "verified_how", "verified_at"])
        reason = (f"another account proved that it owns {other.display}; this account's "
                  "users can no longer send as it")
        _event(other, DomainEventKind.CLAIMED, reason)
        _audit("domain.claimed_by_other_account", other, actor)
    domain.status = DomainStatus.VERIFIED
    domain.verified_how = how
    domain.verified_at = now
    domain.record_missing_since = None
    domain.save(update_fields=["status", "verified_how", "verified_at", "record_missing_since"])
    tell_relays(domain.account_id, *(o.account_id for o in others))


def _verify_by_dns(domain: SendingDomain, actor: Actor | None, now: datetime) -> str:
    """Verify by the token just found; "" or why it could not be."""
    if ownership.other_owner(domain) is not None:
        return ownership.owned_elsewhere_message(domain)
    was = domain.status
    try:
        with transaction.atomic():
            _claim(domain, VerifiedHow.DNS, actor, now)
    except IntegrityError:  # another account verified it at the same moment
        domain.refresh_from_db()
        return ownership.owned_elsewhere_message(domain)
    _event(domain, DomainEventKind.VERIFIED, f"{domain.display} is verified by its DNS record")
    _audit("domain.verify", domain, actor, how=VerifiedHow.DNS, was=was)
    return ""


def _apply_token(
    domain: SendingDomain, lookup_published: bool, actor: Actor | None, now: datetime
) -> str:
    """Move the domain on after a token lookup that ran; "" or why it could not verify."""
    if lookup_published:
        if domain.status != DomainStatus.VERIFIED or domain.verified_how == VerifiedHow.UPGRADE:
            return _verify_by_dns(domain, actor, now)
        if domain.record_missing_since is not None:
            domain.record_missing_since = None
            domain.save(update_fields=["record_missing_since"])
        return ""
    if not ownership.can_lapse(domain):
        return ""
    if domain.record_missing_since is None:
        domain.record_missing_since = now
        domain.save(update_fields=["record_missing_since"])
    deadline = ownership.lapse_deadline(domain)
    if deadline is not None and now >= deadline:
        domain.status = DomainStatus.LAPSED
        domain.save(update_fields=["status"])
        reason = (f"the record {domain.verification_name} has been missing since "
                  f"{domain.record_missing_since:%Y-%m-%d %H:%M} UTC")
        _event(domain, DomainEventKind.LAPSED, reason)
        _audit("domain.lapse", domain, actor, reason=reason)
        tell_relays(domain.account_id)
    return ""


def check_domain(
    domain: SendingDomain,
    actor: Actor | None = None,
    resolver: dns.resolver.Resolver | None = None,
) -> list[Finding]:
    """Check the domain's DNS now: the verification token first (which verifies, keeps or
    lapses the domain), then every registered check (`accounts.domains.ownership.CHECKS`). Stores
    the findings in `check_result` and records an `auth_broken` event when a check that
    had no error has one now."""
    resolver = resolver or make_resolver()
    actor = actor or Actor.system("SMTP+ domain check")
    now = timezone.now()
    lookup = ownership.token_lookup(domain, resolver)  # before the transaction: DNS is slow
    with transaction.atomic():
        domain = SendingDomain.objects.select_for_update().select_related("account").get(pk=domain.pk)
        was_active = domain.is_active
        refused = ""
        if lookup.ran:
            refused = _apply_token(domain, ownership.token_published(domain, lookup), actor, now)
        finding = ownership.verification_finding(domain, lookup, now)
        if refused and finding.severity != "error":
            finding = Finding(ownership.CHECK_NAME, "error", "Not verified", refused + ".")
    found = [finding]
    for check in ownership.CHECKS:
        found += check(domain, resolver)
    with transaction.atomic():
        domain = SendingDomain.objects.select_for_update().select_related("account").get(pk=domain.pk)
        broken = ownership.newly_broken(domain.check_result, found) if was_active else []
        domain.check_result = {"checked_at": now.isoformat(), "findings": [f.to_dict() for f in found]}
        domain.last_checked_at = now
        domain.save(update_fields=["check_result", "last_checked_at"])
        if broken:
            reason = "; ".join(f"{f.check}: {f.title}" for f in broken)
            _event(domain, DomainEventKind.AUTH_BROKEN, reason,
                   findings=[f.to_dict() for f in broken])
    return found


@transaction.atomic
def force_verify(domain: SendingDomain, actor: Actor | None = None) -> SendingDomain:
    """An operator marks the domain verified without DNS (it never lapses on a missing
    record). Refused when another account owns the domain: transfer it instead."""
    domain = SendingDomain.objects.select_for_update().select_related("account").get(pk=domain.pk)
    owner = ownership.other_owner(domain)
    if owner is not None:
        raise DomainError(
            f"{domain.display} is verified by account {owner.account.slug}: transfer it "
            f"(manage.py domain transfer {domain.domain} --from {owner.account.slug} "
            f"--to {domain.account.slug}) instead")
    was = domain.status
    _claim(domain, VerifiedHow.OPERATOR, actor, timezone.now())
    _event(domain, DomainEventKind.VERIFIED, f"{domain.display} was marked verified by an operator")
    _audit("domain.verify", domain, actor, how=VerifiedHow.OPERATOR, was=was)
    return domain


@transaction.atomic
def transfer_domain(
    domain: SendingDomain, to_account: Account, actor: Actor | None = None
) -> SendingDomain:
    """Move the domain, with its status, token and keys, to another account. The target
    account's own row of the domain, if any (unverified or verified at upgrade), goes."""
    domain = SendingDomain.objects.select_for_update().select_related("account").get(pk=domain.pk)
    source = domain.account
    if source.pk == to_account.pk:
        raise DomainError(f"{domain.display} already belongs to account {to_account.slug}")
    replaced = SendingDomain.objects.filter(account=to_account, domain=domain.domain).first()
    if replaced is not None and replaced.is_active and replaced.verified_how != VerifiedHow.UPGRADE:
        raise DomainError(f"{domain.display} is already verified in account {to_account.slug}")
    if replaced is not None:
        replaced.delete()
    domain.account = to_account
    domain.save(update_fields=["account"])
    details = {"domain": domain.domain, "from": source.slug, "to": to_account.slug,
               "replaced_row_of_target": replaced is not None}
    audit.record("domain.transfer", account=source, actor=actor, target=domain,
                 target_label=domain.display, details=details)
    audit.record("domain.transfer", account=to_account, actor=actor, target=domain,
                 target_label=domain.display, details=details)
    tell_relays(source.pk, to_account.pk)
    return domain


def authorization_data(
    found: tuple[list[AuthorizedDomain], list[AuthorizedEmail]],
) -> list[dict[str, str]]:
    """`ownership.authorizations_at()` as the console, the CLI and the API list them."""
    rows = [{"smtp_user": d.smtp_user.username, "kind": "domain", "sender": d.domain,
             "display": d.display} for d in found[0]]
    rows += [{"smtp_user": e.smtp_user.username, "kind": "email", "sender": e.email,
              "display": e.display} for e in found[1]]
    return rows


@transaction.atomic
def remove_domain(domain: SendingDomain, actor: Actor | None = None) -> list[dict[str, str]]:
    """Remove a sending domain: its account's users can no longer send as it, and the
    authorizations that rest on it (`ownership.authorizations_at`) are removed with it, one
    audit row per SMTP+ user. Returns those authorizations (`authorization_data`)."""
    domain = SendingDomain.objects.select_for_update().select_related("account").get(pk=domain.pk)
    found = ownership.authorizations_at(domain)
    removed = authorization_data(found)
    by_user: dict[int, tuple[SmtpUser, list[str], list[str]]] = {}
    for d in found[0]:
        by_user.setdefault(d.smtp_user_id, (d.smtp_user, [], []))[1].append(d.domain)
    for e in found[1]:
        by_user.setdefault(e.smtp_user_id, (e.smtp_user, [], []))[2].append(e.email)
    AuthorizedDomain.objects.filter(pk__in=[d.pk for d in found[0]]).delete()
    AuthorizedEmail.objects.filter(pk__in=[e.pk for e in found[1]]).delete()
    for smtp_user, removed_domains, removed_emails in by_user.values():
        details: dict[str, object] = {"because": f"sending domain {domain.domain} removed"}
        if removed_domains:
            details["removed_domains"] = removed_domains
        if removed_emails:
            details["removed_emails"] = removed_emails
        audit.record("smtpuser.senders_remove", account=domain.account, actor=actor,
                     target=smtp_user, target_label=smtp_user.username, details=details)
    _audit("domain.remove", domain, actor, status=domain.status,
           removed_authorizations=len(removed))
    tell_relays(domain.account_id)  # bumps every user's version: sessions re-check
    domain.delete()
    return removed


@transaction.atomic
def set_include_subdomains(
    domain: SendingDomain, include: bool, actor: Actor | None = None
) -> bool:
    """Let the account's users be authorized for subdomains of this domain (or not)."""
    if domain.include_subdomains == include:
        return False
    domain.include_subdomains = include
    domain.save(update_fields=["include_subdomains"])
    _audit("domain.subdomains", domain, actor, include_subdomains=include)
    tell_relays(domain.account_id)
    return True
