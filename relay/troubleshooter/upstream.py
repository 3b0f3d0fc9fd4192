"""Troubleshooter check about delivery: recipients the upstream server refused, with its
most frequent replies, read by the same explainer as the message page and the alerts.
See `relay.troubleshooter.base` for the contract of a check.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import Count
from django.urls import reverse

from accounts.models import SmtpUser
from relay import explain
from relay.models import DsnRecord, FailReason, Recipient
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
)


def _reading(row: dict[str, Any]) -> explain.Reading:
    return explain.explain_delivery(
        row["last_code"], row["last_enhanced"], row["last_text"], row["fail_reason"],
        last_reason=row["last_reason"],
    )


def _reports(failed: Any) -> str:
    """Whether the senders heard of the failures: the delivery reports sent, or not."""
    records = DsnRecord.objects.filter(recipient__in=failed.values("pk"))
    sent = records.filter(dsn__isnull=False).count()
    unsent = records.filter(dsn__isnull=True).count()
    line = f"Delivery reports (bounces) sent to the sender for them: {sent}"
    if unsent:
        line += (f"; not sent for {unsent} (the client's NOTIFY, this user's delivery report "
                 "setting or the rate limit; the message page says which)")
    return line


def _advice(top: list[dict[str, Any]]) -> str:
    """What the most frequent failures mean and what to do, each reading once."""
    readings = list({r.key: r for r in map(_reading, top)}.values())
    return " ".join(
        f"{r.summary[:1].upper()}{r.summary[1:]}: {r.explanation} {r.what_to_do}"
        for r in readings[:3]
    )


def check_upstream(user: SmtpUser, now: datetime, facts: Facts | None = None) -> CheckResult:
    since = now - WINDOW
    # The user's own mail: the delivery reports SMTP+ sent for it (null sender) aside.
    own = Recipient.objects.filter(smtp_user=user).exclude(message__envelope_from="")
    counts = {r["status"]: r["n"] for r in own.filter(
        created__gte=since).values("status").annotate(n=Count("id")).order_by()}
    failed = own.filter(status="failed", finished_at__gte=since)
    top = list(failed.values("last_code", "last_enhanced", "last_text", "fail_reason",
                             "last_reason").annotate(n=Count("id")).order_by("-n")[:5])
    n_failed = failed.count() if top else 0
    log = reverse("relay:messages") + f"?user={user.pk}&status=failed"
    evidence = ["Recipients of the last 24 h: " + (", ".join(
        f"{n} {status}" for status, n in sorted(counts.items())) or "none")]
    for r in top:
        reply = " ".join(str(x) for x in (r["last_code"], r["last_enhanced"]) if x)
        label = FailReason(r["fail_reason"]).label if r["fail_reason"] in FailReason.values else ""
        text = (r["last_text"] or label or "no reply")[:300]
        evidence.append(f"{times(r['n'])}: {reply} {text}".strip())
    if n_failed:
        evidence.insert(1, f"{n_failed} recipient{'s' if n_failed != 1 else ''} failed in the "
                        "last 24 h; the most frequent replies:")
        evidence.append(_reports(failed))
        reports = reverse("relay:messages") + f"?user={user.pk}&kind=dsn"
        return CheckResult("upstream", PROBLEM, "Deliveries failing upstream", evidence, Fix(
            _advice(top), [Action("See the failed messages", log),
                           Action("See the delivery reports sent", reports, primary=False)]))
    if not counts:
        return CheckResult("upstream", NODATA, "No message accepted in the last 24 h", evidence)
    return CheckResult("upstream", OK, "No delivery failed upstream", evidence)
