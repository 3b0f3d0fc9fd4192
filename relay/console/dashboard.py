"""What the dashboard shows: relay status, queue, latest problems; and the traffic
statistics of `relay.console.stats`.

A handful of queries, each served by an index of relay/models.py, whatever the volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Exists, Min, OuterRef
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone

from accounts.models import Account, AuthorizedDomain, AuthorizedEmail, SmtpUser
from accounts.tenancy import AccountRequest, member_required
from relay.console.stats import statistics_context
from relay.headers import display_subject
from relay.listen import NODE_ALIVE_SECONDS, node_listeners, ports_by_tls
from relay.models import (
    PENDING_STATUSES,
    Recipient,
    RecipientStatus,
    RelayEvent,
    RelayNode,
)

PROBLEMS_SHOWN = 8


# A node that stopped beating (killed, its machine lost) is shown as down this long;
# one stopped on purpose is not shown.
DOWN_SHOWN = timedelta(hours=24)


@dataclass
class NodeView:
    node: RelayNode
    # [("STARTTLS", "25, 587, 1025-5000"), ("implicit TLS", "465")]
    ports: list[tuple[str, str]]
    down: bool = False
    uptime: timedelta | None = None


def node_ports(listeners: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return ports_by_tls(node_listeners(listeners))


def relay_status() -> dict[str, Any]:
    """Every live relay node, then those that stopped beating without stopping."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=NODE_ALIVE_SECONDS)
    recent = list(RelayNode.objects.filter(stopped__isnull=True, heartbeat__gte=now - DOWN_SHOWN)
                  .order_by("hostname", "node_id"))
    nodes = [NodeView(n, node_ports(n.listeners), uptime=now - n.started)
             for n in recent if n.heartbeat >= cutoff]
    alive = bool(nodes)
    nodes += [NodeView(n, node_ports(n.listeners), down=True)
              for n in sorted(recent, key=lambda n: n.heartbeat, reverse=True)
              if n.heartbeat < cutoff]
    last_seen: datetime | None = None
    if not alive:
        last = RelayNode.objects.order_by("-heartbeat").only("heartbeat").first()
        last_seen = last.heartbeat if last else None
    return {"nodes": nodes, "no_relay": not alive, "relay_last_seen": last_seen}


def recipient_counts(account: Account) -> dict[str, Any]:
    """The queue: recipients queued or deferred, and the oldest one's age. (What was
    accepted, delivered, deferred or failed in a period is `relay.console.stats`.)"""
    row = Recipient.objects.filter(account=account, status__in=PENDING_STATUSES).aggregate(
        queue=Count("pk"),
        oldest=Min("created"),
    )
    row["oldest_age"] = (timezone.now() - row["oldest"]) if row["oldest"] else None
    return row


def account_smtp_users(account: Account) -> list[SmtpUser]:
    """The account's SMTP+ users, each with `has_senders` (an authorized domain or
    address): the first-steps card, the users that cannot send and the top lists' names,
    from one query."""
    return list(
        SmtpUser.objects.filter(account=account)
        .annotate(has_senders=Exists(AuthorizedDomain.objects.filter(smtp_user=OuterRef("pk")))
                  | Exists(AuthorizedEmail.objects.filter(smtp_user=OuterRef("pk"))))
        .only("id", "name", "username", "active")
    )


def dashboard_context(account: Account,
                      smtp_users: list[SmtpUser] | None = None) -> dict[str, Any]:
    if smtp_users is None:
        smtp_users = account_smtp_users(account)
    counts = recipient_counts(account)
    failed = list(
        Recipient.objects.filter(account=account, status=RecipientStatus.FAILED)
        .select_related("message")
        .only("id", "address", "created", "finished_at", "last_code", "last_enhanced",
              "last_text", "fail_reason", "message__id", "message__envelope_from",
              "message__subject")
        .order_by("-created", "-id")[:PROBLEMS_SHOWN]
    )
    for recipient in failed:
        recipient.subject = display_subject(recipient.message.subject)  # type: ignore[attr-defined]
    events = list(
        RelayEvent.objects.filter(account=account).order_by("-last_seen", "-id")[:PROBLEMS_SHOWN]
    )
    return {
        **relay_status(),
        "counts": counts,
        "failed_recipients": failed,
        "recent_events": events,
        "users_without_senders": [u for u in smtp_users if not u.has_senders],  # type: ignore[attr-defined]
        "has_smtp_users": bool(smtp_users),
    }


@member_required()
def dashboard(request: AccountRequest) -> HttpResponse:
    smtp_users = account_smtp_users(request.account)
    context = dashboard_context(request.account, smtp_users)
    context.update(statistics_context(request.account, request.GET.get("period"),
                                      smtp_users=smtp_users))
    return render(request, "dashboard.html", context)
