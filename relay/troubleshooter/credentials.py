"""Troubleshooter checks about logging in: are this user's credentials accepted, and if
not, why (the seed's "wrong credentials" row). See `relay.troubleshooter.base` for the
contract of a check.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Max, Q, Sum
from django.urls import reverse

from accounts.models import SmtpUser
from relay.models import ConnectionStat, EventKind, RelayEvent
from relay.troubleshooter.base import (
    NODATA,
    OK,
    PROBLEM,
    WINDOW,
    Action,
    CheckResult,
    Facts,
    Fix,
    times,
    user_page,
    when,
)

LOGIN_KINDS = (EventKind.AUTH_FAILED, EventKind.TLS_REQUIRED, EventKind.AUTH_COOLOFF)
REASON_LABELS = {
    EventKind.TLS_REQUIRED: "TLS required (AUTH before STARTTLS)",
    EventKind.AUTH_COOLOFF: "refused during the cool-off after too many failures",
}
REASON_FIXES = {
    "wrong password": "Reveal the password on the user's page and re-enter it in the client.",
    "unknown user": "The client uses a username that does not exist: re-enter the username "
                    "shown on the user's page.",
    "user disabled": "The user is disabled: enable it on the user's page.",
    EventKind.TLS_REQUIRED: "Turn on STARTTLS (or SSL/TLS on an implicit-TLS port) in the "
                            "client: the relay only accepts a login over an encrypted connection.",
    EventKind.AUTH_COOLOFF: "The client's address was cooled off after repeated failures; "
                            "fix the credentials, then wait for the cool-off to end.",
}


def _known_ips(user: SmtpUser, since: datetime) -> list[str]:
    """Addresses this user's clients used lately. An AUTH refused before TLS (or during a
    cool-off) is answered before the username is read, so its event can only be tied to
    a user by the client's address."""
    recent = (RelayEvent.objects.filter(smtp_user=user, last_seen__gte=since)
              .exclude(client_ip=None).order_by().values_list("client_ip", flat=True)
              .distinct()[:20])
    ips = {ip for ip in recent if ip is not None}
    if user.last_login_ip:
        ips.add(user.last_login_ip)
    return sorted(ips)


def last_login(user: SmtpUser) -> datetime | None:
    """The last successful login: the user's row is written at most once a minute per
    relay, the hourly connection counts at every heartbeat; the later of the two."""
    stat = (ConnectionStat.objects.filter(smtp_user=user, logins__gt=0)
            .aggregate(last=Max("last_seen"))["last"])
    return max((t for t in (user.last_login_at, stat) if t), default=None)


def check_credentials(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    since = now - WINDOW
    failures = RelayEvent.objects.filter(
        Q(smtp_user=user) | Q(username__iexact=user.username)
        | Q(username="", client_ip__in=_known_ips(user, since)),
        kind__in=LOGIN_KINDS, last_seen__gte=since,
    )
    by_reason = list(failures.values("kind", "reason").annotate(
        n=Sum("count"), last=Max("last_seen")).order_by("-n")[:10])
    by_ip = list(failures.values("client_ip").annotate(
        n=Sum("count"), last=Max("last_seen")).order_by("-n")[:5])
    evidence: list[str] = []
    total = sum(r["n"] for r in by_reason)
    last_failure = max((r["last"] for r in by_reason), default=None)
    if total:
        evidence.append(f"{total} failed login{'s' if total != 1 else ''} in the last 24 h, "
                        f"the last at {when(last_failure)}")
        for r in by_reason:
            label = REASON_LABELS.get(r["kind"]) or r["reason"] or r["kind"]
            evidence.append(f"Reason: {label} — {times(r['n'])}, last at {when(r['last'])}")
        for r in by_ip:
            evidence.append(f"From {r['client_ip'] or 'unknown address'}: {times(r['n'])}")
    last_ok = last_login(user)
    evidence.append(f"Last successful login: {when(last_ok)}"
                    + (f" from {user.last_login_ip}" if user.last_login_ip else ""))
    reveal = Action("Reveal the credentials on the user's page", user_page(user))
    if not user.active:
        evidence.insert(0, "The user is disabled: every login is refused.")
        return CheckResult("credentials", PROBLEM, "Credentials: the user is disabled", evidence,
                           Fix("Enable the user on its page.", [Action("Open the user's page",
                                                                       user_page(user))]))
    if total and (last_ok is None or (last_failure is not None and last_ok < last_failure)):
        fixes = []
        for r in by_reason:
            text = REASON_FIXES.get(r["reason"]) or REASON_FIXES.get(r["kind"])
            if text and text not in fixes:
                fixes.append(text)
        fixes.append(f"The username is {user.username}; the password is on the user's page.")
        return CheckResult("credentials", PROBLEM, "Credentials: logins are failing", evidence,
                           Fix(" ".join(fixes), [reveal, Action(
                               "See the failed logins", reverse("relay:events")
                               + f"?user={user.pk}&kind={EventKind.AUTH_FAILED}", primary=False)]))
    if total:
        evidence.append("A login succeeded after the last failure.")
    if last_ok is None and not total:
        return CheckResult("credentials", NODATA, "Credentials: no login attempt seen", evidence,
                           Fix("Nothing has logged in as this user yet. Configure the client "
                               "with the username and password from the user's page.", [reveal]))
    return CheckResult("credentials", OK, "Credentials are accepted", evidence)

