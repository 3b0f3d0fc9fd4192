"""Alerts about sending domains: one lapsed or taken by another account, and domain
authentication broken (a check that passed finds an error: the verification record
gone, a DKIM key that no longer matches, an SPF or DMARC record broken).

The source rows are `accounts.DomainEvent`s, written by the domain checks
(`accounts.actions.domains`); they concern the whole account, so a rule scoped to some
SMTP+ users gets them too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.urls import reverse

from accounts.models import DomainEvent, DomainEventKind
from alerts.models import AlertEvent, EventType
from relay.explain.reading import Reading

DOMAIN_EVENTS = (EventType.DOMAIN_LAPSED, EventType.DOMAIN_AUTH_BROKEN)
SOURCES = {
    EventType.DOMAIN_LAPSED: (DomainEventKind.LAPSED, DomainEventKind.CLAIMED),
    EventType.DOMAIN_AUTH_BROKEN: (DomainEventKind.AUTH_BROKEN,),
}
ALL_USERS = "every SMTP+ user of the account"


def domain_event_data(ev: DomainEvent) -> dict[str, Any]:
    """What an alert says about a domain event (a snapshot: the domain may go)."""
    findings = ev.details.get("findings") or []
    return {
        "smtp_user": ALL_USERS, "smtp_username": "", "smtp_user_id": None,
        "domain_event_id": ev.pk,
        "domain_kind": ev.kind,
        "domain": ev.display,
        "address": ev.display,
        "sending_domain_id": ev.sending_domain_id,
        "reason": ev.reason,
        "findings": [{"check": f.get("check", ""), "title": f.get("title", ""),
                      "fix": f.get("fix", "")} for f in findings if isinstance(f, dict)],
        "count": 1,
    }


def candidates(account_id: int, since: datetime, kinds: set[str]) -> list[AlertEvent]:
    wanted = [source for kind in DOMAIN_EVENTS if kind in kinds for source in SOURCES[kind]]
    if not wanted:
        return []
    by_source = {source: kind for kind in DOMAIN_EVENTS for source in SOURCES[kind]}
    rows = DomainEvent.objects.filter(account_id=account_id, kind__in=wanted, created__gt=since)
    return [
        AlertEvent(kind=by_source[DomainEventKind(ev.kind)], source_key=f"domain:{ev.pk}",
                   occurred_at=ev.created, data=domain_event_data(ev))
        for ev in rows.order_by("created", "id")
    ]


def reading(kind: str, data: dict[str, Any]) -> Reading:
    domain, reason = data.get("domain", ""), data.get("reason", "")
    if kind == EventType.DOMAIN_LAPSED:
        taken = data.get("domain_kind") == DomainEventKind.CLAIMED
        return Reading(
            key="domain_claimed" if taken else "domain_lapsed",
            summary=f"{domain} can no longer be sent as",
            explanation=(f"The sending domain {domain} is no longer verified for this account: "
                         f"{reason}. The relay now refuses its senders."),
            what_to_do=("If the domain is yours, ask the operator to transfer it to this account."
                        if taken else f"Publish the verification record of {domain} again "
                                      "and press Check now on its page in the console."),
        )
    fixes = "; ".join(f"{f['title']}: {f['fix']}" if f.get("fix") else f["title"]
                      for f in data.get("findings", []))
    return Reading(
        key="domain_auth_broken",
        summary=f"authentication of {domain} broken",
        explanation=(f"A check of {domain} that passed before now fails ({reason}): receiving "
                     "mail servers may reject or spam-folder its mail."),
        what_to_do=(f"Fix the records as the domain's page says{': ' + fixes if fixes else ''}, "
                    "then press Check now."),
    )


def link_path(data: dict[str, Any]) -> str:
    if data.get("sending_domain_id"):
        return reverse("accounts:domain_detail", args=[data["sending_domain_id"]])
    return reverse("accounts:domain_list")
