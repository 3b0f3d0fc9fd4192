"""Authorizing senders in tests as an account would: the account owns the domain.

An SMTP+ user may send as a domain only when it is a verified sending domain of the
user's account, so tests that authorize a domain give the account that sending domain
too (marked verified by an operator: no DNS needed), and addresses are confirmed.
"""

from __future__ import annotations

from django.utils import timezone

from accounts.domains.ownership import new_token
from accounts.models import (
    AuthorizedDomain,
    AuthorizedEmail,
    DomainStatus,
    SendingDomain,
    SmtpUser,
    VerifiedHow,
)


def own(account_id: int, domain: str, include_subdomains: bool = False) -> SendingDomain:
    """The account's verified sending domain `domain` (A-label), made if need be."""
    row, created = SendingDomain.objects.get_or_create(
        account_id=account_id, domain=domain,
        defaults={"token": new_token(), "status": DomainStatus.VERIFIED,
                  "verified_how": VerifiedHow.OPERATOR, "verified_at": timezone.now(),
                  "include_subdomains": include_subdomains})
    if not created and include_subdomains and not row.include_subdomains:
        row.include_subdomains = True
        row.save(update_fields=["include_subdomains"])
    return row


def authorize(smtp_user: SmtpUser, domain: str, include_subdomains: bool = False,
              **fields: object) -> AuthorizedDomain:
    """Authorize `domain` (A-label) for the user, its account owning it."""
    own(smtp_user.account_id, domain, include_subdomains)
    return AuthorizedDomain.objects.create(
        smtp_user=smtp_user, domain=domain, include_subdomains=include_subdomains, **fields)


def authorize_email(smtp_user: SmtpUser, email: str, **fields: object) -> AuthorizedEmail:
    """Authorize the address for the user, confirmed (as by its link)."""
    fields.setdefault("confirmed_at", timezone.now())
    fields.setdefault("confirmed_how", "link")
    return AuthorizedEmail.objects.create(smtp_user=smtp_user, email=email, **fields)
