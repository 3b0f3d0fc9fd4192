"""What an alert says: subject, text and HTML bodies, and the webhook's JSON payload.

Rendered from the events' snapshots (`AlertEvent.data`), so an alert can be built after
the queue rows were pruned. Templates: emails/alert_subject.txt, alert_body.txt,
alert_body.html. HTML is autoescaped; the subject is collapsed to one line.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import NoReverseMatch, reverse
from django.utils.dateparse import parse_datetime

from alerts import domain_events
from alerts.models import DELIVERY_EVENTS, Alert, AlertEvent, EventType
from relay import explain

# An alert about a burst lists this many events and counts the rest.
MAX_LISTED = 100
SUBJECT_MAX = 250


def console_url(path: str) -> str:
    return settings.SMTPPLUS_CONSOLE_URL.rstrip("/") + path


def _messages_path(data: dict[str, Any]) -> str:
    if data.get("message_id"):
        try:
            return reverse("relay:message_detail", args=[data["message_id"]])
        except NoReverseMatch:
            pass
    params = {"recipient": data.get("recipient", "")}
    if data.get("smtp_user_id"):
        params["user"] = data["smtp_user_id"]
    return reverse("relay:messages") + "?" + urlencode({k: v for k, v in params.items() if v})


def _events_path(data: dict[str, Any], kind: str) -> str:
    params: dict[str, Any] = {}
    if data.get("smtp_user_id"):
        params["user"] = data["smtp_user_id"]
    if kind:
        params["kind"] = kind
    return reverse("relay:events") + ("?" + urlencode(params) if params else "")


def reading_for(kind: str, data: dict[str, Any]) -> explain.Reading:
    if kind in DELIVERY_EVENTS:
        return explain.explain_delivery(
            data.get("code"), data.get("enhanced", ""), data.get("text", ""),
            data.get("fail_reason", ""),
            # Snapshots taken before reasons were recorded have none: the reply is read.
            last_reason=data.get("last_reason", ""),
            delayed_minutes=data.get("delayed_minutes") if kind == EventType.DELIVERY_DELAYED else None,
        )
    if kind in domain_events.DOMAIN_EVENTS:
        return domain_events.reading(kind, data)
    if kind == EventType.LOGIN_FAILURES:
        if data.get("group") == "ip":
            who = f"from {data.get('client_ip') or 'one address'}"
        else:
            who = f"for the SMTP+ user {data.get('smtp_user') or data.get('username')}"
        return explain.login_failures(data.get("count", 0), data.get("window_minutes", 0), who)
    return explain.explain_relay_event(
        data.get("relay_kind", ""), data.get("reason", ""), data.get("address", ""),
        data.get("smtp_username", ""),
    )


@dataclass
class EventView:
    kind: str
    kind_label: str
    occurred_at: datetime
    data: dict[str, Any]
    reading: explain.Reading
    link: str
    queued_at: datetime | None = None
    is_delivery: bool = False

    @property
    def user_label(self) -> str:
        d = self.data
        return d.get("smtp_user") or d.get("username") or d.get("smtp_username") or "(unknown)"

    @property
    def address_label(self) -> str:
        return self.data.get("envelope_from") or self.data.get("address") or ""

    def as_json(self) -> dict[str, Any]:
        d = self.data
        out: dict[str, Any] = {
            "kind": self.kind,
            "occurred_at": self.occurred_at.isoformat(),
            "smtp_user": d.get("smtp_username") or d.get("username") or "",
            "reading": self.reading.explanation,
            "reason": self.reading.summary,
            "what_to_do": self.reading.what_to_do,
            "console_url": self.link,
        }
        if self.is_delivery:
            out.update({
                "envelope_from": d.get("envelope_from", ""),
                "recipient": d.get("recipient", ""),
                "subject": d.get("subject", ""),
                "queue_id": d.get("queue_id", ""),
                "queued_at": d.get("queued_at", ""),
                "attempts": d.get("attempts", 0),
                "reply": {"code": d.get("code"), "enhanced": d.get("enhanced", ""),
                          "text": d.get("text", "")},
            })
        else:
            out.update({
                "client_ip": d.get("client_ip", ""), "address": d.get("address", ""),
                "count": d.get("count", 1), "relay_reply": d.get("reply", ""),
            })
        return out


def event_view(ev: AlertEvent) -> EventView:
    data = ev.data or {}
    is_delivery = ev.kind in DELIVERY_EVENTS
    if is_delivery:
        path = _messages_path(data)
    elif ev.kind in domain_events.DOMAIN_EVENTS:
        path = domain_events.link_path(data)
    else:
        path = _events_path(data, data.get("relay_kind", ""))
    return EventView(
        kind=ev.kind,
        kind_label=str(EventType(ev.kind).label) if ev.kind in EventType.values else ev.kind,
        occurred_at=ev.occurred_at,
        data=data,
        reading=reading_for(ev.kind, data),
        link=console_url(path),
        queued_at=parse_datetime(data["queued_at"]) if data.get("queued_at") else None,
        is_delivery=is_delivery,
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def headline(kinds: Counter[str], total: int) -> str:
    if set(kinds) <= {EventType.DELIVERY_FAILED, EventType.DELIVERY_EXPIRED}:
        return f"{_plural(total, 'message')} could not be delivered"
    if set(kinds) == {EventType.DELIVERY_DELAYED}:
        return f"{_plural(total, 'message')} not delivered yet"
    if set(kinds) == {EventType.SENDER_REJECTED}:
        return f"{_plural(total, 'sender')} refused as not authorized"
    if set(kinds) == {EventType.LOGIN_FAILURES}:
        return f"repeated failed logins ({_plural(total, 'source')})"
    if set(kinds) == {EventType.RATE_LIMITED}:
        return f"hourly limit reached ({_plural(total, 'SMTP+ user')})"
    if set(kinds) <= set(domain_events.DOMAIN_EVENTS):
        return f"{_plural(total, 'sending domain problem')}"
    if set(kinds) == {EventType.RECIPIENT_SUPPRESSED}:
        return f"{_plural(total, 'recipient')} refused: on the suppression list"
    return f"{_plural(total, 'problem')} sending mail"


# Line breaks and other control characters (C0, DEL, C1, Unicode line and paragraph
# separators). In a name they would start fake lines in the text body or end a header.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def single_line(text: str) -> str:
    """`text` with each run of control characters shown as one space."""
    return CONTROL_CHARACTERS.sub(" ", text).strip()


def one_line(text: str, limit: int = SUBJECT_MAX) -> str:
    text = re.sub(r"\s+", " ", single_line(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


@dataclass
class AlertContent:
    subject: str
    text: str
    html: str
    payload: dict[str, Any] = field(default_factory=dict)


def build_context(
    *, account_name: str, rule_name: str, views: list[EventView], total: int,
    is_test: bool, period_start: datetime | None, digest: bool,
) -> dict[str, Any]:
    kinds = Counter(v.kind for v in views)
    reasons = Counter(v.reading.summary for v in views)
    main_reason = reasons.most_common(1)[0][0] if reasons else ""
    return {
        # Names are typed by people: the form refuses line breaks in a rule's name, and
        # any that got in another way (older rows, the CLI) cannot forge lines here.
        "account_name": single_line(account_name),
        "rule_name": single_line(rule_name),
        "headline": headline(kinds, total),
        "main_reason": main_reason,
        "other_reasons": max(0, len(reasons) - 1),
        "events": views,
        "total": total,
        "unlisted": max(0, total - len(views)),
        "is_test": is_test,
        "digest": digest,
        "period_start": period_start,
        "port_note": explain.PORT_NOTE,
        "rules_url": console_url(reverse("alerts:rules")),
        "log_url": console_url(reverse("alerts:log")),
    }


def subject_for(context: dict[str, Any]) -> str:
    return one_line(render_to_string("emails/alert_subject.txt", context))


def render_alert(alert: Alert) -> AlertContent:
    total = alert.event_count
    views = [event_view(ev) for ev in alert.events.order_by("occurred_at", "id")[:MAX_LISTED]]
    # What the alert was when it was built (its rule may have changed or gone since):
    # only a digest has a period.
    ctx = build_context(
        account_name=alert.account.name, rule_name=alert.rule_name, views=views, total=total,
        is_test=alert.is_test, period_start=alert.period_start,
        digest=alert.period_start is not None,
    )
    subject = alert.subject
    payload = {
        "type": "smtpplus.alert",
        "test": alert.is_test,
        "alert_id": alert.pk,
        "account": alert.account.name,
        "rule": {"id": alert.rule_id, "name": alert.rule_name},
        "subject": subject,
        "reason": ctx["main_reason"],
        "count": total,
        "period_start": alert.period_start.isoformat() if alert.period_start else None,
        "created": alert.created.isoformat(),
        "events": [v.as_json() for v in views],
        "console_url": ctx["log_url"],
    }
    return AlertContent(
        subject=subject,
        text=render_to_string("emails/alert_body.txt", ctx),
        html=render_to_string("emails/alert_body.html", ctx),
        payload=payload,
    )
