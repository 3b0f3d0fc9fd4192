"""Troubleshooter check about the suppression list: recipients the relay refused at
RCPT TO because the account suppressed them. See `relay.troubleshooter.base` for the
contract of a check.
"""

from __future__ import annotations

from datetime import datetime

from django.db.models import Max, Sum
from django.urls import reverse
from django.utils.http import urlencode

from accounts.models import SmtpUser
from relay.explain.relay_events import SUPPRESSED
from relay.models import EventKind, RelayEvent
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


def check_suppressed(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    rows = list(
        RelayEvent.objects.filter(smtp_user=user, kind=EventKind.SUPPRESSED,
                                  last_seen__gte=now - WINDOW)
        .values("address").annotate(n=Sum("count"), last=Max("last_seen")).order_by("-n")[:5]
    )
    if not rows:
        return CheckResult("suppressed", OK, "No recipient refused as suppressed",
                           ["No recipient was refused for being on the suppression list in "
                            "the last 24 h."])
    evidence = [f"{r['address']}: refused {times(r['n'])}, the last at {when(r['last'])}"
                for r in rows]
    page = reverse("relay:suppressions")
    actions = [Action("See the suppression list", page + (
        "?" + urlencode({"q": rows[0]["address"].lower()}) if len(rows) == 1 else ""))]
    return CheckResult("suppressed", PROBLEM, "Recipients refused: on the suppression list",
                       evidence, Fix(f"{SUPPRESSED.explanation} {SUPPRESSED.what_to_do}", actions))
