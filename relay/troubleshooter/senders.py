"""Troubleshooter checks about senders: rejected sender domains and addresses, with a
one-click button to authorize each, and a user with no authorized sender at all (the
seed's "sender domain / email not authorized" rows). See `relay.troubleshooter.base`.

Only a domain the account owns (a verified sending domain) gets an "Authorize" button;
for any other, the fix is a secondary "Add X as a sending domain and verify it", with a
warning: a sender nobody recognises may be someone spoofing the domain.
"""

from __future__ import annotations

from datetime import datetime

from django.urls import reverse

from accounts.models import AuthorizedEmail, SmtpUser
from accounts.senders import UNCONFIRMED_ADDRESS, covered, subdomains_covered
from relay.models import EventKind
from relay.troubleshooter.base import (
    MAX_SHOWN,
    OK,
    PROBLEM,
    Action,
    CheckResult,
    Facts,
    Fix,
    Rejection,
    user_page,
    when,
)
from smtpplus.addresses import display_email, domain_to_unicode


def _authorize(user: SmtpUser, label: str, kind: str, value: str, *, subdomains: bool = False,
               primary: bool = True) -> Action:
    post = {"kind": kind, "value": value}
    if subdomains:
        post["include_subdomains"] = "1"
    return Action(label, reverse("relay:troubleshoot_authorize", args=[user.pk]), post, primary)


def _add_domain(domain: str, facts: Facts) -> Action:
    shown = domain_to_unicode(domain)
    known = facts.sending_domains.get(domain)
    if known is not None:  # added already, not verified (or lapsed): its page says how
        return Action(f"Verify {shown} (publish its record)",
                      reverse("accounts:domain_detail", args=[known]), primary=False)
    return Action(f"Add {shown} as a sending domain and verify it", reverse("accounts:domain_add"),
                  {"domain": domain}, primary=False)


def closed_parent(domain: str, facts: Facts) -> str:
    """The account's verified sending domain that `domain` is a subdomain of, when that
    sending domain does not include subdomains ("" if none; the nearest if several)."""
    parents = [d for d, include in facts.owned if not include and domain.endswith("." + d)]
    return max(parents, key=len, default="")


def _open_subdomains(parent: str, facts: Facts) -> Action:
    shown = domain_to_unicode(parent)
    return Action(f"Let subdomains of {shown} be authorized",
                  reverse("accounts:domain_subdomains", args=[facts.sending_domains[parent]]),
                  {"include_subdomains": "1"})


def _closed_note(closed: list[tuple[str, str]]) -> str:
    if not closed:
        return ""
    domain, parent = closed[0]
    more = f" (and {len(closed) - 1} more)" if len(closed) > 1 else ""
    return (f" {domain_to_unicode(domain)}{more} is a subdomain of the sending domain "
            f"{domain_to_unicode(parent)}, which does not include subdomains: the relay "
            "refuses it until that sending domain includes them (then authorize it here), "
            "or until it is a sending domain of its own.")


SPOOFING_NOTE = ("A sender you do not recognise may be someone spoofing the domain: do not "
                 "add or authorize it. Only a domain this account owns can be authorized: add "
                 "it as a sending domain and publish its record first.")


def _kinds_text(kinds: dict[str, int]) -> str:
    names = {EventKind.SENDER_REJECTED: "envelope sender", EventKind.FROM_REJECTED: "From header"}
    return ", ".join(f"{name} ×{kinds[kind]}" for kind, name in names.items() if kind in kinds)


def _fixed_note(fixed: int) -> list[str]:
    if not fixed:
        return []
    return [f"{fixed} rejection{'s' if fixed != 1 else ''} of the last 24 h "
            "now pass: those senders have been authorized since. Resend those messages."]


def _nothing_rejected(key: str, what: str, fixed: int) -> CheckResult:
    return CheckResult(key, OK, f"No sender {what} was rejected", _fixed_note(fixed) or [
        "No message was rejected for its sender in the last 24 h."])


def check_sender_domains(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    facts = facts or Facts(user, now)
    rejections, fixed = facts.rejections
    if not rejections:
        return _nothing_rejected("sender_domain", "domain", fixed)
    domains: dict[str, list[Rejection]] = {}
    for r in rejections:
        domains.setdefault(r.domain, []).append(r)
    ordered = sorted(domains.items(), key=lambda kv: -sum(r.count for r in kv[1]))
    evidence: list[str] = []
    actions: list[Action] = []
    unowned = False
    closed_subdomains: list[tuple[str, str]] = []
    opened: set[str] = set()
    for domain, rejs in ordered:
        shown = domain_to_unicode(domain)
        addresses = ", ".join(display_email(r.address) for r in rejs[:3])
        more = f" and {len(rejs) - 3} more" if len(rejs) > 3 else ""
        total = sum(r.count for r in rejs)
        evidence.append(f"{shown}: {total} rejected, last at "
                        f"{when(max(r.last for r in rejs))} ({addresses}{more})")
        if len(actions) >= MAX_SHOWN * 2:
            continue
        labels = domain.split(".")
        www = labels[0] == "www" and len(labels) >= 3
        parent = ".".join(labels[1:])
        if not covered(domain, facts.owned):
            if closed := closed_parent(domain, facts):
                # Owned, but its sending domain does not let subdomains be authorized:
                # no authorization can make the relay take it before that changes.
                closed_subdomains.append((domain, closed))
                if closed not in opened:
                    opened.add(closed)
                    actions.append(_open_subdomains(closed, facts))
                continue
            unowned = True
            actions.append(_add_domain(parent if www else domain, facts))
        elif www and covered(parent, facts.owned) and subdomains_covered(parent, facts.owned):
            # The seed: mail comes from mycompany.com, rarely www.mycompany.com. Authorizing
            # the parent with its subdomains covers both — when the account's sending
            # domain lets its subdomains be authorized (or the relay would still refuse).
            actions.append(_authorize(user, f"Authorize {domain_to_unicode(parent)} and its "
                                            "subdomains", "domain", parent, subdomains=True))
            actions.append(_authorize(user, f"Authorize only {shown}", "domain", domain,
                                      primary=False))
        else:
            actions.append(_authorize(user, f"Authorize {shown}", "domain", domain))
    return CheckResult(
        "sender_domain", PROBLEM, "Sender domain not authorized", evidence + _fixed_note(fixed),
        Fix("Authorize the domain the client sends from (usually mycompany.com, not "
            "www.mycompany.com) — or, if you prefer, only the addresses (below). Then "
            "resend: rejected messages were not stored."
            + _closed_note(closed_subdomains)
            + (" " + SPOOFING_NOTE if unowned else ""), actions))


def _email_action(user: SmtpUser, facts: Facts, address: str) -> Action:
    if facts.policy.check(address).refusal == UNCONFIRMED_ADDRESS:
        entry = AuthorizedEmail.objects.filter(smtp_user=user, email__iexact=address).first()
        if entry is not None:
            return Action(f"Resend the confirmation to {display_email(address)}",
                          reverse("accounts:smtpuser_email_resend", args=[user.pk, entry.pk]),
                          {"resend": "1"}, primary=False)
    return _authorize(user, f"Authorize {display_email(address)}", "email", address)


def check_sender_emails(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    facts = facts or Facts(user, now)
    rejections, fixed = facts.rejections
    if not rejections:
        return _nothing_rejected("sender_email", "address", fixed)
    evidence = [
        f"{display_email(r.address)}: {r.count} rejected ({_kinds_text(r.kinds)}), "
        f"last at {when(r.last)}" for r in rejections[:MAX_SHOWN * 2]
    ]
    if len(rejections) > MAX_SHOWN * 2:
        evidence.append(f"… and {len(rejections) - MAX_SHOWN * 2} more addresses")
    actions = [_email_action(user, facts, r.address) for r in rejections[:MAX_SHOWN]]
    return CheckResult(
        "sender_email", PROBLEM, "Sender email not authorized", evidence + _fixed_note(fixed),
        Fix("Authorize just these addresses — or the whole domain (above), whichever works "
            "best for you. Then resend: rejected messages were not stored."
            + (" An address at a domain this account does not own sends once its owner has "
               "followed the confirmation link mailed to it."
               if any(a.label.startswith("Resend") for a in actions) else ""), actions))


def check_has_senders(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    facts = facts or Facts(user, now)
    domains, emails = [domain for domain, _ in facts.domains], facts.emails
    if not domains and not emails:
        return CheckResult("has_senders", PROBLEM, "No authorized senders at all", [
            "This user has no authorized domain and no authorized address: every message "
            "is rejected."], Fix("Authorize the domain (or the addresses) the client sends "
                                 "from on the user's page.",
                                 [Action("Open the user's page", user_page(user))]))
    policy = facts.policy
    usable = policy.emails or policy.domains or policy.domains_with_subdomains
    shown = [_domain_as_relay_sees_it(d, include, facts) for d, include in facts.domains[:5]]
    shown += [display_email(e) for e in emails[:5]]
    more = " …" if len(domains) > 5 or len(emails) > 5 else ""
    if not usable:
        return CheckResult("has_senders", PROBLEM, "No usable authorized sender", [
            f"Authorized: {', '.join(shown)}{more}", "The relay refuses every one of them: "
            "a domain must be a verified sending domain of the account, an address at "
            "another domain must be confirmed."], Fix(
                "Verify the sending domains (Sending domains page) or confirm the addresses; "
                "the user's page shows which is which.",
                [Action("Open the user's page", user_page(user))]))
    return CheckResult("has_senders", OK, "The user has authorized senders",
                       [f"Authorized: {', '.join(shown)}{more}"])


def _domain_as_relay_sees_it(domain: str, include: bool, facts: Facts) -> str:
    """An authorized domain for the evidence, with what the relay makes of its subdomains
    when that is less than the entry says."""
    shown = domain_to_unicode(domain)
    if not include:
        return shown
    if domain in facts.policy.domains_with_subdomains:
        return f"{shown} and its subdomains"
    if domain in facts.policy.domains:
        return (f"{shown} (not its subdomains: the sending domain {shown} does not include "
                "subdomains)")
    return shown
