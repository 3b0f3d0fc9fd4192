"""Troubleshooter checks about the relay's limits: the user's hourly limit and the
message size limit. See `relay.troubleshooter.base` for the contract of a check.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Sum
from django.urls import reverse

from accounts.models import SmtpUser
from relay.models import EventKind, Message, RelayEvent
from relay.troubleshooter.base import (
    OK,
    PROBLEM,
    WINDOW,
    Action,
    CheckResult,
    Facts,
    Fix,
    times,
    when,
)


def check_hourly_limit(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    hits = RelayEvent.objects.filter(smtp_user=user, kind=EventKind.RATE_LIMITED,
                                     last_seen__gte=now - WINDOW).aggregate(
        n=Sum("count"), last=Max("last_seen"))
    # As the relay counts: the delivery reports SMTP+ wrote (null sender) are not the user's.
    last_hour = Message.objects.filter(smtp_user=user, created__gte=now - timedelta(hours=1)).exclude(
        envelope_from="").count()
    limit = user.hourly_limit
    evidence = [f"Hourly limit: {limit if limit else 'none'}; messages accepted in the last "
                f"hour: {last_hour}"]
    if hits["n"]:
        evidence.append(f"Refused for the hourly limit: {times(hits['n'])} in the last 24 h, "
                        f"the last at {when(hits['last'])}")
    # Raising the limit (which changes the user) resolves earlier hits.
    current = bool(limit) and (last_hour >= (limit or 0) or (
        bool(hits["n"]) and hits["last"] > user.changed))
    if current:
        return CheckResult("hourly_limit", PROBLEM, "Over the hourly limit", evidence, Fix(
            "The client was told 451 4.7.1 (try again later) and should retry. Raise or remove "
            "the limit on the user's page, or spread the sending over time.",
            [Action("Edit the user", reverse("accounts:smtpuser_edit", args=[user.pk]))]))
    return CheckResult("hourly_limit", OK, "Within the hourly limit", evidence)


def check_size(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    limit_mb = settings.RELAY_MAX_MESSAGE_SIZE / (1024 * 1024)
    rows = list(RelayEvent.objects.filter(smtp_user=user, kind=EventKind.SIZE_EXCEEDED,
                                          last_seen__gte=now - WINDOW)
                .values("reason").annotate(n=Sum("count"), last=Max("last_seen"))
                .order_by("-last")[:5])
    evidence = [f"Size limit: {limit_mb:g} MB per message (attachments grow by about a third "
                "when encoded)."]
    if not rows:
        evidence.append("No message was refused for its size in the last 24 h.")
        return CheckResult("size", OK, "No message too large", evidence)
    for r in rows:
        evidence.append(f"Refused for size: {times(r['n'])}, last at {when(r['last'])}"
                        + (f" — {r['reason']}" if r["reason"] else ""))
    return CheckResult("size", PROBLEM, "Messages rejected for size", evidence, Fix(
        "Send smaller messages: link to large files instead of attaching them. The operator "
        "can raise RELAY_MAX_MESSAGE_SIZE."))

