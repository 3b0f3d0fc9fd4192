"""One SMTP+ user's statistics page: the dashboard's charts for that user alone, its
logins (per hour and port, with or without TLS), the clients its messages came from, and
why the relay refused it.

What the relay records, and so what this page can show: logins are counted per hour and
port (`ConnectionStat`: logins, of which over TLS), not one row per login; the client's
IP address, port and HELO name are stored with each message; refusals and failed logins
are relay events with their client IP. The IP of a successful login is kept only for the
user's last one (`SmtpUser.last_login_ip`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db.models import Sum
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from accounts.models import SmtpUser
from accounts.tenancy import AccountRequest, member_required
from relay.console.stats import Window, link, statistics_context
from relay.listen import TLS_LABELS, advertised_listeners
from relay.models import ConnectionStat, EventKind, Message, RelayEvent

LOGIN_ROWS = 48  # hours x ports shown
CLIENT_MESSAGES = 1000  # the clients of this user's latest messages
REASONS = 10


@dataclass
class LoginRow:
    hour: datetime
    port: int
    port_tls: str  # what the relay offers on the port: "STARTTLS", "implicit TLS", "no TLS"
    logins: int
    tls_logins: int
    last_seen: datetime

    @property
    def plain_logins(self) -> int:
        return self.logins - self.tls_logins


def logins(user: SmtpUser, win: Window) -> list[LoginRow]:
    listeners, _reported = advertised_listeners()
    modes: dict[int, set[str]] = {}
    for x in listeners:
        modes.setdefault(x.port, set()).add(TLS_LABELS.get(x.tls, TLS_LABELS["none"]))
    rows = (ConnectionStat.objects.filter(smtp_user=user, hour__gte=win.start, logins__gt=0)
            .order_by("-hour", "port")
            .values("hour", "port", "logins", "tls_logins", "last_seen")[:LOGIN_ROWS])
    return [LoginRow(r["hour"], r["port"], ", ".join(sorted(modes.get(r["port"], ()))) or
                     "not listened on now", r["logins"], r["tls_logins"], r["last_seen"])
            for r in rows]


@dataclass
class Client:
    ip: str
    port: int | None
    helo: str
    messages: int
    last: datetime


def clients(user: SmtpUser) -> list[Client]:
    """Where the user's latest messages came from: (IP, port, HELO) with counts."""
    found: dict[tuple[str, int | None, str], Client] = {}
    for ip, port, helo, created in (
            Message.objects.filter(smtp_user=user).order_by("-created", "-id")
            .values_list("client_ip", "port", "client_helo", "created")[:CLIENT_MESSAGES]):
        key = (ip or "", port, helo)
        client = found.get(key)
        if client is None:
            found[key] = Client(ip or "", port, helo, 1, created)
        else:
            client.messages += 1
    return sorted(found.values(), key=lambda c: (-c.messages, c.ip, c.port or 0))


@dataclass
class Reason:
    kind: str
    label: str
    count: int
    href: str  # the relay events of this user, kind and period
    details: list[tuple[str, int]] = field(default_factory=list)  # (precise reason, count)


def rejection_reasons(user: SmtpUser, win: Window) -> list[Reason]:
    labels = dict(EventKind.choices)
    kinds: dict[str, Reason] = {}
    for row in (RelayEvent.objects.filter(smtp_user=user, last_seen__gte=win.start,
                                          last_seen__lt=win.end)
                .values("kind", "reason").annotate(n=Sum("count")).order_by()):
        reason = kinds.get(row["kind"])
        if reason is None:
            reason = kinds[row["kind"]] = Reason(
                row["kind"], labels.get(row["kind"], row["kind"]), 0,
                link("rejected", win.start, win.end, user=user.pk, kind=row["kind"]))
        reason.count += row["n"] or 0
        reason.details.append((row["reason"], row["n"] or 0))
    ranked = sorted(kinds.values(), key=lambda r: (-r.count, r.label))[:REASONS]
    for reason in ranked:
        reason.details.sort(key=lambda d: (-d[1], d[0]))
    return ranked


@member_required()
def user_stats(request: AccountRequest, pk: int) -> HttpResponse:
    smtp_user = get_object_or_404(SmtpUser, pk=pk, account=request.account)
    context: dict[str, Any] = statistics_context(request.account, request.GET.get("period"),
                                                 smtp_user)
    win = context["window"]
    return render(request, "relay/user_stats.html", {
        **context,
        "smtp_user": smtp_user,
        "logins": logins(smtp_user, win),
        "clients": clients(smtp_user),
        "client_messages": CLIENT_MESSAGES,
        "reasons": rejection_reasons(smtp_user, win),
    })
