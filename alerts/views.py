"""Alert center pages: rules (list, create, edit, enable/disable, delete, test, webhook
secret) and the notifications log. Viewers read; owners and admins change."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import OuterRef, Subquery
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.audit import Actor
from accounts.models import Role
from accounts.tenancy import AccountRequest, member_required
from alerts import rules as services
from alerts.content import event_view
from alerts.forms import AlertRuleForm
from alerts.models import AlertRule, Notification, NotificationStatus
from alerts.sample import send_test_alert
from relay.explain import PORT_NOTE
from smtpplus import once


def _rules_with_status(account: Any) -> Any:
    notes = Notification.objects.filter(alert__rule=OuterRef("pk"), alert__is_test=False)
    last_failed = notes.filter(status=NotificationStatus.FAILED).order_by("-last_attempt_at", "-id")
    # A test alert counts as sent: it is the proof that the channel works.
    sent = (Notification.objects.filter(alert__rule=OuterRef("pk"), status=NotificationStatus.SENT)
            .order_by("-sent_at", "-id"))
    return (
        AlertRule.objects.filter(account=account)
        .annotate(
            last_sent=Subquery(sent.values("sent_at")[:1]),
            last_sent_test=Subquery(sent.values("alert__is_test")[:1]),
            last_error=Subquery(last_failed.values("error")[:1]),
            last_error_at=Subquery(last_failed.values("last_attempt_at")[:1]),
        )
        .prefetch_related("smtp_users")
        .order_by("name", "id")
    )


@member_required()
def rule_list(request: AccountRequest) -> HttpResponse:
    return render(request, "alerts/rules.html", {
        "rules": _rules_with_status(request.account),
        "port_note": PORT_NOTE,
    })


def _secret_page(request: HttpRequest, rule: AlertRule, secret: str, created: bool) -> HttpResponse:
    response = render(request, "alerts/secret.html", {"rule": rule, "secret": secret, "created": created})
    response["Cache-Control"] = "no-store"
    return response


@member_required(Role.ADMIN)
def rule_form(request: AccountRequest, pk: int | None = None) -> HttpResponse:
    """Create a rule (no `pk`) or edit one."""
    account = request.account
    rule = get_object_or_404(AlertRule, pk=pk, account=account) if pk is not None else None
    if request.method == "POST":
        form = AlertRuleForm(request.POST, account=account)
        if form.is_valid():
            if rule is None:
                rule, secret = services.create_rule(
                    account, form.rule_data(), form.cleaned_data["smtp_users"],
                    actor=Actor.from_request(request),
                )
                messages.success(request, f"Alert rule “{rule.name}” created.")
            else:
                secret = services.update_rule(
                    rule, form.rule_data(), form.cleaned_data["smtp_users"],
                    actor=Actor.from_request(request),
                )
                messages.success(request, f"Alert rule “{rule.name}” saved.")
            if secret:
                # Shown by the rule's page after the redirect (smtpplus/once.py).
                once.keep_for_next_page(request, "webhook_secret", rule.pk, {"created": True})
            return redirect("alerts:rule_detail", pk=rule.pk)
    elif rule is None:
        default_email = getattr(request.user, "email", "") or request.user.get_username()
        form = AlertRuleForm(account=account, initial={
            "email_recipients": default_email, "events": list(services.DEFAULT_EVENTS),
        })
    else:
        form = AlertRuleForm(account=account, initial=AlertRuleForm.initial_for(rule))
    return render(request, "alerts/rule_form.html", {"form": form, "rule": rule})


@member_required()
def rule_detail(request: AccountRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(
        _rules_with_status(request.account), pk=pk
    )
    kept = once.take(request, "webhook_secret", rule.pk)
    if kept is not None and request.membership.can_edit:
        return _secret_page(request, rule, rule.get_webhook_secret(), created=bool(kept.get("created")))
    recent = (
        Notification.objects.filter(alert__rule=rule).select_related("alert")
        .order_by("-created", "-id")[:20]
    )
    return render(request, "alerts/rule_detail.html", {"rule": rule, "notifications": recent})


@member_required(Role.ADMIN)
@require_POST
def rule_toggle(request: AccountRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk, account=request.account)
    enable = request.POST.get("enabled") == "1"
    services.set_enabled(rule, enable, actor=Actor.from_request(request))
    messages.success(request, f"Alert rule “{rule.name}” {'enabled' if enable else 'disabled'}.")
    if request.POST.get("next") == "list":
        return redirect("alerts:rules")
    return redirect("alerts:rule_detail", pk=rule.pk)


@member_required(Role.ADMIN)
def rule_delete(request: AccountRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk, account=request.account)
    if request.method == "POST":
        name = rule.name
        services.delete_rule(rule, actor=Actor.from_request(request))
        messages.success(request, f"Alert rule “{name}” deleted.")
        return redirect("alerts:rules")
    return render(request, "alerts/rule_delete.html", {"rule": rule})


@member_required(Role.ADMIN)
@require_POST
def rule_test(request: AccountRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk, account=request.account)
    for n in send_test_alert(rule, actor=Actor.from_request(request)):
        if n.error:
            messages.error(request, f"Test alert to {n.target_display} failed: {n.error}")
        else:
            messages.success(request, f"Test alert sent to {n.target_display}.")
    return redirect("alerts:rule_detail", pk=rule.pk)


@member_required(Role.ADMIN)
@require_POST
def rule_reset_secret(request: AccountRequest, pk: int) -> HttpResponse:
    rule = get_object_or_404(AlertRule, pk=pk, account=request.account)
    if not rule.webhook_url:
        messages.error(request, "This rule has no webhook.")
        return redirect("alerts:rule_detail", pk=rule.pk)
    services.reset_secret(rule, actor=Actor.from_request(request))
    once.keep_for_next_page(request, "webhook_secret", rule.pk, {"created": False})
    return redirect("alerts:rule_detail", pk=rule.pk)


@member_required()
def notification_log(request: AccountRequest) -> HttpResponse:
    account = request.account
    qs = Notification.objects.filter(account=account).select_related("alert").order_by("-created", "-id")
    status = request.GET.get("status", "")
    if status in NotificationStatus.values:
        qs = qs.filter(status=status)
    rules = AlertRule.objects.filter(account=account).order_by("name")
    rule_id = request.GET.get("rule", "")
    if rule_id.isdigit():
        qs = qs.filter(alert__rule_id=int(rule_id))
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    return render(request, "alerts/log.html", {
        "page": page, "status": status, "statuses": NotificationStatus.choices,
        "rules": rules, "rule_id": rule_id,
    })


@member_required()
def notification_detail(request: AccountRequest, pk: int) -> HttpResponse:
    n = get_object_or_404(
        Notification.objects.select_related("alert"), pk=pk, account=request.account
    )
    events = [event_view(e) for e in n.alert.events.order_by("occurred_at", "id")[:500]]
    siblings = n.alert.notifications.exclude(pk=n.pk).order_by("id")
    return render(request, "alerts/notification_detail.html", {
        "n": n, "alert": n.alert, "events": events, "siblings": siblings,
    })
