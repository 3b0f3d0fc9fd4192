"""The troubleshooter's one-click fixes: authorize the sender a check found rejected (a
domain only when the account owns it: `accounts.actions.senders.add_senders` refuses any
other, and the check offers to add it as a sending domain instead)."""

from __future__ import annotations

from accounts.actions.senders import add_senders, set_include_subdomains
from accounts.audit import Actor
from accounts.models import AuthorizedDomain, SmtpUser
from accounts.senders import split_entries
from smtpplus.addresses import InvalidEntry, display_email, normalize_domain, normalize_email


def authorize_sender(
    user: SmtpUser,
    kind: str,
    value: str,
    *,
    include_subdomains: bool = False,
    actor: Actor | None = None,
) -> str:
    """Authorize one domain or address for `user` (audited); returns what to tell the admin.

    Raises `InvalidEntry` for anything but exactly one valid domain/address. Authorizing
    a domain that is already there "with its subdomains" turns that option on.
    """
    if kind not in ("domain", "email"):
        raise InvalidEntry("unknown kind of sender")
    if len(split_entries(value)) != 1:
        raise InvalidEntry("exactly one domain or address is expected")
    if kind == "domain":
        domain = normalize_domain(value)
        result = add_senders(user, domains_text=domain, include_subdomains=include_subdomains,
                             actor=actor)
        if result.domain_errors:  # a domain the account does not own
            raise InvalidEntry(result.domain_errors[0][1])
        entry = AuthorizedDomain.objects.get(smtp_user=user, domain=domain)
        if include_subdomains and set_include_subdomains(entry, True, actor=actor):
            return f"{entry.display} and its subdomains are now authorized."
        if not result.added_domains:
            return f"{entry.display} was already authorized."
        return f"{entry.display}{' and its subdomains' if include_subdomains else ''} " \
               "is now authorized."
    email = normalize_email(value)
    result = add_senders(user, emails_text=email, actor=actor)
    if not result.added_emails:
        return f"{display_email(email)} was already authorized."
    if result.pending_emails:
        return (f"{display_email(email)} is now authorized; it can send once the link just "
                "mailed to it has been followed.")
    return f"{display_email(email)} is now authorized."
