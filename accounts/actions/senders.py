"""Changes to an SMTP+ user's authorized senders, each with its audit row.

One form submission (or one CLI call) is one function call here and at most one audit
row listing what was added or removed, and bumps the user's version so that sessions
already logged in to a relay are judged by the new senders. Parsing and validation are
`accounts.senders`'.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction

from accounts import audit
from accounts.actions.confirmations import send_confirmations_on_commit
from accounts.audit import Actor
from accounts.domains.ownership import ownership_problem, verified_domains
from accounts.models import AuthorizedDomain, AuthorizedEmail, SmtpUser
from accounts.senders import (
    ParsedSenders,
    covered,
    parse_domains,
    parse_emails,
    verification_required,
)
from smtpplus.addresses import InvalidEntry, display_email, domain_to_unicode


class TooManySenders(InvalidEntry):
    """Adding these senders would take the user past SMTPPLUS_MAX_SENDERS_PER_USER."""


@dataclass
class AddResult:
    """What one "add senders" submission did, and what to tell the admin about it."""

    added_domains: list[str] = field(default_factory=list)  # A-labels
    added_emails: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)  # already authorized (display form)
    # (entry, reason), per box so that a form can give each box back its bad entries
    domain_errors: list[tuple[str, str]] = field(default_factory=list)
    email_errors: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (entry, advice)
    # Addresses typed into the domain box: valid, not saved, offered as addresses.
    emails_in_domain_box: list[str] = field(default_factory=list)
    # Added addresses at a domain the account does not own: usable once confirmed by
    # the link mailed to them.
    pending_emails: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[tuple[str, str]]:
        return self.domain_errors + self.email_errors

    @property
    def changed(self) -> bool:
        return bool(self.added_domains or self.added_emails)

    @property
    def needs_attention(self) -> bool:
        return bool(self.errors or self.warnings or self.emails_in_domain_box)

    @property
    def added_display(self) -> list[str]:
        return [domain_to_unicode(d) for d in self.added_domains] + [
            display_email(e) for e in self.added_emails
        ]

    @property
    def offered(self) -> list[tuple[str, str]]:
        """(stored form, display form) of the addresses found in the domain box."""
        return [(e, display_email(e)) for e in self.emails_in_domain_box]


def validate_senders(
    domains_text: str = "",
    emails_text: str = "",
    *,
    account_id: int | None = None,
    include_subdomains: bool = False,
    existing: frozenset[str] = frozenset(),
) -> tuple[ParsedSenders, ParsedSenders]:
    """Parse both boxes without saving anything (the CLI and the API refuse a call with
    errors): (domains, emails). With `account_id` (and SMTPPLUS_SENDER_VERIFICATION not
    off), a domain the account does not own is an error naming what to do; `existing`
    domains (already authorized) are not judged again."""
    domains, emails = parse_domains(domains_text), parse_emails(emails_text)
    if account_id is not None and verification_required():
        for domain in list(domains.valid):
            problem = "" if domain in existing else ownership_problem(
                account_id, domain, include_subdomains)
            if problem:
                domains.errors.append((domain_to_unicode(domain), problem))
                domains.valid.remove(domain)
    return domains, emails


@transaction.atomic
def add_senders(
    smtp_user: SmtpUser,
    *,
    domains_text: str = "",
    emails_text: str = "",
    include_subdomains: bool = False,
    actor: Actor | None = None,
) -> AddResult:
    """Save every valid entry of both boxes; duplicates and existing entries are skipped.

    `include_subdomains` applies to the domains added by this call only. Raises
    `TooManySenders`, saving nothing, if the user would end up with more domains and
    addresses together than SMTPPLUS_MAX_SENDERS_PER_USER: every way of adding senders
    (console, troubleshooter, CLI) comes through here.
    """
    # The row lock makes concurrent additions for one user count one after the other.
    SmtpUser.objects.select_for_update().filter(pk=smtp_user.pk).first()
    existing_domains = set(
        AuthorizedDomain.objects.filter(smtp_user=smtp_user).values_list("domain", flat=True)
    )
    domains, emails = validate_senders(
        domains_text, emails_text, account_id=smtp_user.account_id,
        include_subdomains=include_subdomains, existing=frozenset(existing_domains))
    result = AddResult(
        domain_errors=domains.errors,
        email_errors=emails.errors,
        warnings=domains.warnings,
        emails_in_domain_box=domains.emails_in_domain_box,
    )
    existing_emails = {
        e.lower()
        for e in AuthorizedEmail.objects.filter(smtp_user=smtp_user).values_list("email", flat=True)
    }
    new = {d for d in domains.valid if d not in existing_domains} | {
        e.lower() for e in emails.valid if e.lower() not in existing_emails
    }
    verify = verification_required()
    _check_limit(smtp_user, len(existing_domains) + len(existing_emails), len(new))
    owned = verified_domains(smtp_user.account_id) if verify else []
    for domain in domains.valid:
        if domain in existing_domains:
            result.unchanged.append(domain_to_unicode(domain))
            continue
        AuthorizedDomain.objects.create(
            smtp_user=smtp_user, domain=domain, include_subdomains=include_subdomains
        )
        existing_domains.add(domain)
        result.added_domains.append(domain)
    for email in emails.valid:
        if email.lower() in existing_emails:
            result.unchanged.append(display_email(email))
            continue
        AuthorizedEmail.objects.create(smtp_user=smtp_user, email=email)
        existing_emails.add(email.lower())
        result.added_emails.append(email)
        if verify and not covered(email.rpartition("@")[2], owned):
            result.pending_emails.append(email)
    if result.changed:
        details: dict[str, object] = {}
        if result.added_domains:
            details["added_domains"] = result.added_domains
            details["include_subdomains"] = include_subdomains
        if result.added_emails:
            details["added_emails"] = result.added_emails
        if result.pending_emails:
            details["pending_confirmation"] = result.pending_emails
            send_confirmations_on_commit(result.pending_emails, smtp_user.pk, actor)
        smtp_user.mark_changed()
        audit.record(
            "smtpuser.senders_add", account=smtp_user.account, actor=actor,
            target=smtp_user, target_label=smtp_user.username, details=details,
        )
    return result


def _check_limit(smtp_user: SmtpUser, existing: int, adding: int) -> None:
    limit = settings.SMTPPLUS_MAX_SENDERS_PER_USER
    if adding and existing + adding > limit:
        raise TooManySenders(
            f"an SMTP+ user can have at most {limit:,} authorized senders (domains and "
            f"addresses together); {smtp_user.username} has {existing:,} and this would add "
            f"{adding:,}. Nothing was added: remove senders that are no longer used, or "
            "authorize a domain instead of many of its addresses."
        )


@transaction.atomic
def remove_sender(
    entry: AuthorizedDomain | AuthorizedEmail, actor: Actor | None = None
) -> None:
    """Remove one authorized domain or address of its user."""
    smtp_user = entry.smtp_user
    if isinstance(entry, AuthorizedDomain):
        details = {"removed_domains": [entry.domain]}
    else:
        details = {"removed_emails": [entry.email]}
    smtp_user.mark_changed()
    audit.record(
        "smtpuser.senders_remove", account=smtp_user.account, actor=actor,
        target=smtp_user, target_label=smtp_user.username, details=details,
    )
    entry.delete()


@transaction.atomic
def set_include_subdomains(
    entry: AuthorizedDomain, include: bool, actor: Actor | None = None
) -> bool:
    """Turn "include subdomains" on or off for one domain; returns whether it changed.

    Raises `InvalidEntry` when turning it on could not let the user send as a subdomain:
    the account's sending domain must include subdomains first (as for a new entry)."""
    if entry.include_subdomains == include:
        return False
    smtp_user = entry.smtp_user
    if include and verification_required():
        problem = ownership_problem(smtp_user.account_id, entry.domain, include_subdomains=True)
        if problem:
            raise InvalidEntry(problem)
    entry.include_subdomains = include
    entry.save(update_fields=["include_subdomains"])
    smtp_user.mark_changed()
    audit.record(
        "smtpuser.senders_subdomains", account=smtp_user.account, actor=actor,
        target=smtp_user, target_label=smtp_user.username,
        details={"domain": entry.domain, "include_subdomains": include},
    )
    return True
