"""The failed-login cool-off seen from the console: which client of an SMTP+ user is
locked out, until when, and the audited "unblock now" that lifts it.

After `RELAY_AUTH_FAILURE_LIMIT` failed logins from one IP, a relay process refuses
every connection from there for `RELAY_AUTH_COOLOFF` seconds, right password or not. The
relay records the start as an `auth_cooloff` event whose reason begins with
`COOLOFF_STARTED`, tied to the account of the username that was tried. "Unblock now"
writes a `cooloff_released` event for that IP and an audit event, and lifts the IP's
shared cool-off (relay/smtp/shared.py), which every relay process reads within about a
second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from accounts import audit
from accounts.audit import Actor
from accounts.models import Account, SmtpUser
from relay.models import COOLOFF_STARTED, EventKind, RelayEvent
from relay.smtp.shared import release_client
from relay.troubleshooter.base import OK, PROBLEM, Action, CheckResult, Facts, Fix, when

MAX_SHOWN = 5


@dataclass(frozen=True)
class Cooloff:
    client_ip: str
    username: str
    started: datetime
    until: datetime


def _length() -> timedelta:
    return timedelta(seconds=settings.RELAY_AUTH_COOLOFF)


def active_cooloffs(account: Account, user: SmtpUser | None, now: datetime) -> list[Cooloff]:
    """Cool-offs started by the account's usernames (or `user`'s) that still run: not
    over and not lifted by an admin. Latest first."""
    started = RelayEvent.objects.filter(
        account=account, kind=EventKind.AUTH_COOLOFF, reason__startswith=COOLOFF_STARTED,
        last_seen__gt=now - _length(),
    ).exclude(client_ip=None)
    if user is not None:
        started = started.filter(Q(smtp_user=user) | Q(username__iexact=user.username))
    latest: dict[str, Cooloff] = {}
    for ip, username, at in started.order_by("-last_seen").values_list(
            "client_ip", "username", "last_seen")[:50]:
        if ip and ip not in latest:
            latest[ip] = Cooloff(ip, username, at, at + _length())
    if not latest:
        return []
    released = RelayEvent.objects.filter(
        kind=EventKind.COOLOFF_RELEASED, client_ip__in=list(latest),
        last_seen__gte=min(c.started for c in latest.values()),
    ).order_by().values_list("client_ip", "last_seen")
    for ip, at in released:
        cooloff = latest.get(ip or "")
        if cooloff is not None and at >= cooloff.started:
            del latest[cooloff.client_ip]
    return sorted(latest.values(), key=lambda c: c.started, reverse=True)


def _until(cooloff: Cooloff) -> str:
    return timezone.localtime(cooloff.until).strftime("%H:%M")


def check_lockout(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    cooloffs = active_cooloffs(user.account, user, now)
    if not cooloffs:
        return CheckResult("lockout", OK, "No client of this user is locked out", [
            f"After {settings.RELAY_AUTH_FAILURE_LIMIT} failed logins from one address, the "
            f"relay refuses that address for {settings.RELAY_AUTH_COOLOFF // 60} minutes."])
    first = cooloffs[0]
    evidence = [
        f"Client {c.client_ip} is locked out until {when(c.until)}: too many failed logins "
        f"(the last as {c.username or 'an unknown username'}), since {when(c.started)}"
        for c in cooloffs[:MAX_SHOWN]
    ]
    evidence.append("During the cool-off every connection from there is refused with 421, "
                    "even with the right password.")
    url = reverse("relay:troubleshoot_unblock", args=[user.pk])
    actions = [Action(f"Unblock {c.client_ip} now", url, {"client_ip": c.client_ip})
               for c in cooloffs[:MAX_SHOWN]]
    fix = Fix("Fix the credentials in the client first (the credentials check says why they "
              "were refused), then unblock it: every relay process lets it in again within "
              "a second.", actions)
    return CheckResult("lockout", PROBLEM,
                       f"Client {first.client_ip} is locked out until {_until(first)}",
                       evidence, fix)


def release_cooloff(account: Account, client_ip: str, actor: Actor | None = None) -> bool:
    """Lift the cool-off of `client_ip`, if one started by the account's usernames runs
    (audited); False when there is none to lift."""
    now = timezone.now()
    if not any(c.client_ip == client_ip for c in active_cooloffs(account, None, now)):
        return False
    who = actor.user.get_username() if actor is not None and actor.user is not None else ""
    with transaction.atomic():
        RelayEvent.objects.create(
            account=account, kind=EventKind.COOLOFF_RELEASED, client_ip=client_ip,
            created=now, last_seen=now, reason=f"lifted by {who or 'an admin'}",
        )
        release_client(client_ip)
        audit.record("relay.cooloff_release", account=account, actor=actor,
                     target_label=client_ip, details={"client_ip": client_ip})
    return True
