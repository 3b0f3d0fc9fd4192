"""Authorized senders: parsing what admins type, and deciding "may U send as A?".

`SenderPolicy.check()` is the one place that decides whether an SMTP+ user may use a
sender address; the relay (MAIL FROM and the From:/Sender: headers) and the console's
"can this user send as …?" form both call it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from django.conf import settings

from accounts.models import (
    AuthorizedDomain,
    AuthorizedEmail,
    DomainStatus,
    SendingDomain,
    SmtpUser,
)
from smtpplus.addresses import (
    InvalidEntry,
    domain_to_unicode,
    normalize_domain,
    normalize_email,
    split_address,
)

SEPARATORS = re.compile(r"[;,\s]+")
# `Name <x@y>` as pasted from a mail client: one entry, spaces (and, quoted, commas) in
# the name included.
_NAMED_ADDRESS = re.compile(r'(?:"(?:[^"\\\n]|\\.)*"|[^;,\n<>"])*<[^<>@\n]*@[^<>\n]*>')


def split_entries(text: str) -> list[str]:
    """Split what an admin typed: `;`, `,`, spaces and newlines all separate entries,
    except inside a pasted `Name <address>`, which stays one entry."""
    text = text or ""
    entries: list[str] = []
    start = 0
    for named in _NAMED_ADDRESS.finditer(text):
        entries += [e for e in SEPARATORS.split(text[start:named.start()]) if e]
        entries.append(named.group().strip())
        start = named.end()
    return entries + [e for e in SEPARATORS.split(text[start:]) if e]


@dataclass
class ParsedSenders:
    """The outcome of parsing one text box: what to save, and what to tell the admin."""

    valid: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (entry, reason)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (entry, advice)
    emails_in_domain_box: list[str] = field(default_factory=list)


def parse_domains(text: str) -> ParsedSenders:
    result = ParsedSenders()
    for entry in split_entries(text):
        if "@" in entry:
            try:
                result.emails_in_domain_box.append(normalize_email(entry))
            except InvalidEntry as exc:
                result.errors.append((entry, str(exc)))
            continue
        try:
            domain = normalize_domain(entry)
        except InvalidEntry as exc:
            result.errors.append((entry, str(exc)))
            continue
        if domain in result.valid:
            continue
        result.valid.append(domain)
        if domain.startswith("www.") and domain.count(".") >= 2:
            parent = domain_to_unicode(domain[4:])
            result.warnings.append(
                (entry, f"mail is usually sent from {parent}, not www.{parent}; "
                        f"authorize {parent} unless you really send from www.")
            )
    return result


def parse_emails(text: str) -> ParsedSenders:
    result = ParsedSenders()
    seen: set[str] = set()
    for entry in split_entries(text):
        try:
            email = normalize_email(entry)
        except InvalidEntry as exc:
            result.errors.append((entry, str(exc)))
            continue
        if email.lower() in seen:
            continue
        seen.add(email.lower())
        result.valid.append(email)
    return result


# Why a sender was refused: not authorized at all, or authorized but not usable yet.
NOT_AUTHORIZED = "not_authorized"
UNVERIFIED_DOMAIN = "unverified_domain"
UNCONFIRMED_ADDRESS = "unconfirmed_address"
# Authorized as a subdomain of a verified sending domain that does not include subdomains.
SUBDOMAINS_NOT_OWNED = "subdomains_not_owned"


@dataclass(frozen=True)
class Decision:
    allowed: bool
    # Which rule allowed it ("address x@y.z", "domain y.z", "domain y.z and its
    # subdomains") or why not — shown in the console and in relay events.
    reason: str
    # When refused: NOT_AUTHORIZED, or authorized but UNVERIFIED_DOMAIN (the domain is
    # not a verified sending domain of the account), SUBDOMAINS_NOT_OWNED (it is a
    # subdomain of one that does not include subdomains) or UNCONFIRMED_ADDRESS.
    refusal: str = ""
    # The domain the refusal is about (A-label), when there is one.
    domain: str = ""


def covered(domain: str, owned: Iterable[tuple[str, bool]]) -> bool:
    """Whether `domain` is one of the owned domains or, when one opts in, its subdomain."""
    return any(domain == d or (include and domain.endswith("." + d)) for d, include in owned)


def subdomains_covered(domain: str, owned: Iterable[tuple[str, bool]]) -> bool:
    """Whether every subdomain of `domain` is covered by an owned domain (one that is
    `domain` or a parent of it and includes subdomains): only then may `domain` be
    authorized "with its subdomains"."""
    return any(include and (domain == d or domain.endswith("." + d)) for d, include in owned)


def verification_required() -> bool:
    """SMTPPLUS_SENDER_VERIFICATION: whether senders must be owned (verified, confirmed)."""
    return str(settings.SMTPPLUS_SENDER_VERIFICATION) != "off"


@dataclass
class SenderPolicy:
    """The authorized senders of one SMTP+ user, loaded once, checked in memory.

    `emails`, `domains` and `domains_with_subdomains` are the senders the user may use;
    the `unverified_*` and `unconfirmed_emails` sets are authorized but not usable yet
    (their domain is not a verified sending domain of the account, the address has not
    been confirmed), kept so that a refusal can say so and what to do.
    """

    username: str
    emails: frozenset[str]  # lower-cased "local@a-label"
    domains: frozenset[str]  # exact domains (A-labels)
    domains_with_subdomains: frozenset[str]
    unverified_domains: frozenset[str] = frozenset()
    unverified_with_subdomains: frozenset[str] = frozenset()
    unconfirmed_emails: frozenset[str] = frozenset()

    @classmethod
    def load(cls, smtp_user: SmtpUser) -> SenderPolicy:
        domains = AuthorizedDomain.objects.filter(smtp_user=smtp_user).values_list(
            "domain", "include_subdomains"
        )
        emails = [
            (email, confirmed is not None)
            for email, confirmed in AuthorizedEmail.objects.filter(smtp_user=smtp_user)
            .values_list("email", "confirmed_at")
        ]
        owned = SendingDomain.objects.filter(
            account_id=smtp_user.account_id, status=DomainStatus.VERIFIED
        ).values_list("domain", "include_subdomains")
        return cls.from_entries(smtp_user.username, domains, emails, owned=list(owned))

    @classmethod
    def from_entries(
        cls,
        username: str,
        domains: Iterable[tuple[str, bool]],
        emails: Iterable[str | tuple[str, bool]],
        owned: Iterable[tuple[str, bool]] | None = None,
        verify: bool | None = None,
    ) -> SenderPolicy:
        """From stored rows: (domain, include_subdomains) pairs, email addresses (or
        (address, confirmed) pairs) and the account's verified sending domains
        ((domain, include_subdomains) pairs).

        Without `owned`, or with SMTPPLUS_SENDER_VERIFICATION=off (`verify` overrides
        the setting), every authorized sender is usable. Otherwise an authorized domain
        must be covered by a verified sending domain of the account, and an address must
        be confirmed or at such a domain.
        """
        if verify is None:
            verify = owned is not None and verification_required()
        owned_list = list(owned or ()) if verify else []
        exact: set[str] = set()
        subs: set[str] = set()
        bad_exact: set[str] = set()
        bad_subs: set[str] = set()
        for domain, include in domains:
            if verify and not covered(domain, owned_list):
                (bad_subs if include else bad_exact).add(domain)
            elif include and verify and not subdomains_covered(domain, owned_list):
                exact.add(domain)  # the domain itself is owned, its subdomains are not
                bad_subs.add(domain)
            else:
                (subs if include else exact).add(domain)
        usable: set[str] = set()
        unconfirmed: set[str] = set()
        for entry in emails:
            email, confirmed = (entry, True) if isinstance(entry, str) else entry
            email = email.lower()
            ok = not verify or confirmed or covered(email.rpartition("@")[2], owned_list)
            (usable if ok else unconfirmed).add(email)
        return cls(
            username, frozenset(usable), frozenset(exact), frozenset(subs),
            frozenset(bad_exact), frozenset(bad_subs), frozenset(unconfirmed),
        )

    @property
    def empty(self) -> bool:
        return not (self.emails or self.domains or self.domains_with_subdomains
                    or self.unverified_domains or self.unverified_with_subdomains
                    or self.unconfirmed_emails)

    def check(self, address: str) -> Decision:
        parts = split_address(address)
        if parts is None:
            return Decision(False, f"<{address}> is not a valid email address", NOT_AUTHORIZED)
        local, domain = parts
        if self.empty:
            return Decision(False, f"SMTP+ user {self.username} has no authorized senders",
                            NOT_AUTHORIZED, domain)
        shown = domain_to_unicode(domain)
        email = f"{local}@{domain}".lower()
        if email in self.emails:
            return Decision(True, f"address {local}@{shown} is authorized")
        if domain in self.domains or domain in self.domains_with_subdomains:
            return Decision(True, f"domain {shown} is authorized")
        parent = _parent_in(domain, self.domains_with_subdomains)
        if parent:
            return Decision(
                True, f"domain {domain_to_unicode(parent)} and its subdomains are authorized"
            )
        if email in self.unconfirmed_emails:
            return Decision(
                False, f"address {local}@{shown} is authorized for SMTP+ user {self.username} "
                "but not confirmed yet: follow the link mailed to it", UNCONFIRMED_ADDRESS, domain)
        unverified = (domain if domain in self.unverified_domains
                      or domain in self.unverified_with_subdomains
                      else _parent_in(domain, self.unverified_with_subdomains))
        if unverified and unverified != domain and unverified in self.domains:
            # The parent itself is owned and usable; its sending domain (or the one that
            # covers it) does not include subdomains.
            return Decision(
                False, f"domain {domain_to_unicode(unverified)} and its subdomains are "
                f"authorized for SMTP+ user {self.username}, but the sending domain "
                f"{domain_to_unicode(unverified)} does not include subdomains",
                SUBDOMAINS_NOT_OWNED, unverified)
        if unverified:
            return Decision(
                False, f"domain {domain_to_unicode(unverified)} is authorized for SMTP+ user "
                f"{self.username} but is not a verified sending domain of its account",
                UNVERIFIED_DOMAIN, unverified)
        return Decision(
            False,
            f"neither the address {local}@{shown} nor the domain {shown} is authorized for "
            f"SMTP+ user {self.username}", NOT_AUTHORIZED, domain,
        )


def _parent_in(domain: str, candidates: frozenset[str]) -> str:
    """The nearest parent domain of `domain` in `candidates` ("" if none)."""
    if not candidates:
        return ""
    labels = domain.split(".")
    for i in range(1, len(labels) - 1):
        parent = ".".join(labels[i:])
        if parent in candidates:
            return parent
    return ""


def can_send_as(smtp_user: SmtpUser, address: str) -> Decision:
    """May this SMTP+ user send as `address`? Says which rule allowed it, or why not."""
    return SenderPolicy.load(smtp_user).check(address)
