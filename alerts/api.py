"""/api/v1/ endpoints of the alert center: the account's alert rules, switching them on
and off, and the "send test alert" button.

Writes go through the console's form (the same validation, webhook address checks
included) and `alerts.rules` (the same audit rows). The webhook address is shown
redacted and its signing secret only once, when a rule gets a webhook, as in the console.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest
from django.utils.datastructures import MultiValueDict
from ninja import Field, Router, Schema, Status

from accounts.api.auth import AUTH_ERRORS, ApiError, account_of, not_found, writer
from alerts import rules
from alerts.forms import AlertRuleForm
from alerts.models import AlertRule, EventType, Frequency
from alerts.sample import send_test_alert

router = Router(tags=["Alert rules"])


class AlertRuleOut(Schema):
    id: int
    name: str
    enabled: bool
    events: list[str]
    delay_minutes: int
    login_threshold: int
    login_window_minutes: int
    all_users: bool
    smtp_user_ids: list[int] = Field(description="Watched SMTP+ users when not all_users.")
    frequency: str
    email_recipients: list[str]
    webhook: str = Field(description="The webhook address, redacted; empty without one.")
    created: datetime
    last_alert_at: datetime | None


class AlertRuleIn(Schema):
    name: str
    enabled: bool = True
    events: list[EventType]
    delay_minutes: int = 60
    login_threshold: int = 10
    login_window_minutes: int = 10
    all_users: bool = True
    smtp_user_ids: list[int] = Field(default_factory=list)
    frequency: Frequency = Frequency.AS_NEEDED
    email_recipients: list[str] = Field(default_factory=list)
    webhook_url: str = Field("", description="Sending back the redacted address keeps the stored one.")


class AlertRuleSavedOut(AlertRuleOut):
    webhook_secret: str | None = Field(
        description="The webhook's signing secret: given only when the rule just got a webhook."
    )


def _validated(request: HttpRequest, body: AlertRuleIn) -> AlertRuleForm:
    data = MultiValueDict({
        "name": [body.name], "events": [str(e) for e in body.events],
        "delay_minutes": [str(body.delay_minutes)], "login_threshold": [str(body.login_threshold)],
        "login_window_minutes": [str(body.login_window_minutes)],
        "all_users": ["1" if body.all_users else "0"],
        "smtp_users": [str(pk) for pk in body.smtp_user_ids], "frequency": [str(body.frequency)],
        "email_recipients": ["\n".join(body.email_recipients)], "webhook_url": [body.webhook_url],
    })
    if body.enabled:
        data["enabled"] = "on"
    form = AlertRuleForm(data, account=account_of(request))
    if not form.is_valid():
        raise ApiError(422, "invalid_rule", form.errors.as_text())
    return form


def _owned(request: HttpRequest, pk: int) -> AlertRule:
    rule = AlertRule.objects.filter(pk=pk, account=account_of(request)).first()
    if rule is None:
        raise not_found("alert rule")
    return rule


def _rule(rule: AlertRule) -> dict[str, Any]:
    plain = ("id", "name", "enabled", "events", "delay_minutes", "login_threshold",
             "login_window_minutes", "all_users", "frequency", "created", "last_alert_at")
    return {
        **{name: getattr(rule, name) for name in plain},
        "smtp_user_ids": [u.pk for u in rule.smtp_users.all()],
        "email_recipients": rule.email_list,
        "webhook": rule.webhook_display if rule.webhook_url else "",
    }


@router.get("/alert-rules", response={200: list[AlertRuleOut], **AUTH_ERRORS})
def list_rules(request: HttpRequest) -> Any:
    rules = AlertRule.objects.filter(account=account_of(request)).prefetch_related("smtp_users")
    return [_rule(r) for r in rules]


@router.get("/alert-rules/{pk}", response={200: AlertRuleOut, **AUTH_ERRORS})
def show_rule(request: HttpRequest, pk: int) -> Any:
    return _rule(_owned(request, pk))


@router.post("/alert-rules", response={201: AlertRuleSavedOut, **AUTH_ERRORS})
def create_rule(request: HttpRequest, body: AlertRuleIn) -> Any:
    actor = writer(request)
    form = _validated(request, body)
    rule, secret = rules.create_rule(account_of(request), form.rule_data(),
                                     form.cleaned_data["smtp_users"], actor=actor)
    return Status(201, {**_rule(rule), "webhook_secret": secret})


@router.put("/alert-rules/{pk}", response={200: AlertRuleSavedOut, **AUTH_ERRORS})
def update_rule(request: HttpRequest, pk: int, body: AlertRuleIn) -> Any:
    """Replace a rule's settings (every field, as the console's form does)."""
    actor = writer(request)
    rule = _owned(request, pk)
    form = _validated(request, body)
    secret = rules.update_rule(rule, form.rule_data(), form.cleaned_data["smtp_users"], actor=actor)
    rule.refresh_from_db()
    return {**_rule(rule), "webhook_secret": secret}


@router.delete("/alert-rules/{pk}", response={204: None, **AUTH_ERRORS})
def delete_rule(request: HttpRequest, pk: int) -> Any:
    actor = writer(request)
    rules.delete_rule(_owned(request, pk), actor=actor)
    return Status(204, None)


class TestNotificationOut(Schema):
    channel: str
    target: str = Field(description="Where it went (a webhook address redacted).")
    sent: bool
    error: str


class TestAlertOut(Schema):
    notifications: list[TestNotificationOut]


@router.post("/alert-rules/{pk}/test", response={200: TestAlertOut, **AUTH_ERRORS})
def test_rule(request: HttpRequest, pk: int) -> Any:
    """Send a sample alert through every channel of the rule now, as the console's
    "send test alert" button does; the answer says, per channel, whether it went."""
    actor = writer(request)
    notifications = send_test_alert(_owned(request, pk), actor=actor)
    return {"notifications": [
        {"channel": n.channel, "target": n.target_display, "sent": not n.error, "error": n.error}
        for n in notifications]}


@router.post("/alert-rules/{pk}/enable", response={200: AlertRuleOut, **AUTH_ERRORS})
def enable_rule(request: HttpRequest, pk: int) -> Any:
    actor = writer(request)
    rule = _owned(request, pk)
    rules.set_enabled(rule, True, actor=actor)
    return _rule(rule)


@router.post("/alert-rules/{pk}/disable", response={200: AlertRuleOut, **AUTH_ERRORS})
def disable_rule(request: HttpRequest, pk: int) -> Any:
    actor = writer(request)
    rule = _owned(request, pk)
    rules.set_enabled(rule, False, actor=actor)
    return _rule(rule)
