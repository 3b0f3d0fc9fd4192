"""Troubleshooter pages: the checks for one SMTP+ user, one-click authorize, test message."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.audit import Actor
from accounts.models import Role, SmtpUser
from accounts.tenancy import AccountRequest, member_required
from relay.forms import TestMessageForm
from relay.troubleshooter import run_checks
from relay.troubleshooter.base import PROBLEM, Facts
from relay.troubleshooter.fixes import authorize_sender
from relay.troubleshooter.lockout import release_cooloff
from relay.troubleshooter.testmessage import (
    Endpoint,
    Line,
    TestOutcome,
    default_endpoint,
    endpoints,
    send_test_message,
)
from smtpplus import once
from smtpplus.addresses import InvalidEntry, display_email, domain_to_unicode


def _default_sender(facts: Facts) -> str:
    if facts.emails:
        return display_email(facts.emails[0])
    return f"test@{domain_to_unicode(facts.domains[0][0])}" if facts.domains else ""


def _page(request: AccountRequest, facts: Facts, form: TestMessageForm | None = None,
          outcome: TestOutcome | None = None) -> HttpResponse:
    user = facts.user
    if form is None:
        options = endpoints(facts.listeners[0])
        default = default_endpoint(options)
        form = TestMessageForm(options=options, initial={
            "sender": _default_sender(facts),
            "recipient": request.user.email,
            "port": default.port if default else None,
        })
    checks = run_checks(user, facts=facts)
    context = {
        "smtp_user": user,
        "checks": checks,
        "problems": [c for c in checks if c.status == PROBLEM],
        "can_edit": request.membership.can_edit,
        "form": form,
        "outcome": outcome,
    }
    response = render(request, "relay/troubleshoot.html", context)
    if outcome is not None:
        response["Cache-Control"] = "no-store"
    return response


@member_required()
def troubleshoot(request: AccountRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(SmtpUser, pk=pk, account=request.account)
    facts = Facts(user, timezone.now())
    kept = once.take(request, "test_message", user.pk)
    if kept is None:
        return _page(request, facts)
    form = TestMessageForm(kept["form"], options=endpoints(facts.listeners[0]))
    form.is_valid()  # the values were valid when posted; this binds them for display
    return _page(request, facts, form=form, outcome=_kept_outcome(kept))


@member_required(Role.ADMIN)
@require_POST
def troubleshoot_authorize(request: AccountRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(SmtpUser, pk=pk, account=request.account)
    kind = request.POST.get("kind", "")
    value = request.POST.get("value", "")[:320]
    try:
        text = authorize_sender(user, kind, value,
                                include_subdomains=request.POST.get("include_subdomains") == "1",
                                actor=Actor.from_request(request))
    except InvalidEntry as exc:
        messages.error(request, f"Could not authorize {value}: {exc}")
    else:
        messages.success(request, f"{text} Resend the rejected messages: they were not stored.")
    anchor = "#check-sender_domain" if kind == "domain" else "#check-sender_email"
    return redirect(reverse("relay:troubleshoot", args=[user.pk]) + anchor)


@member_required(Role.ADMIN)
@require_POST
def troubleshoot_unblock(request: AccountRequest, pk: int) -> HttpResponse:
    """Lift a failed-login cool-off on every relay process (audited)."""
    user = get_object_or_404(SmtpUser, pk=pk, account=request.account)
    client_ip = request.POST.get("client_ip", "")[:45]
    if release_cooloff(request.account, client_ip, actor=Actor.from_request(request)):
        messages.success(request, f"{client_ip} is unblocked: every relay process lets it log "
                                  "in again within a second.")
    else:
        messages.info(request, f"{client_ip} is not locked out (any more).")
    return redirect(reverse("relay:troubleshoot", args=[user.pk]) + "#check-lockout")


@member_required(Role.ADMIN)
@require_POST
def test_message(request: AccountRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(SmtpUser, pk=pk, account=request.account)
    facts = Facts(user, timezone.now())
    form = TestMessageForm(request.POST, options=endpoints(facts.listeners[0]))
    if not form.is_valid():
        return _page(request, facts, form=form)
    outcome = send_test_message(user, form.cleaned_data["sender"],
                                form.cleaned_data["recipient"], form.endpoint,
                                actor=Actor.from_request(request))
    # Shown by the troubleshooter's page after the redirect: a reload sends nothing.
    once.keep_for_next_page(request, "test_message", user.pk, {
        "outcome": asdict(outcome), "form": {**form.cleaned_data, "port": form.endpoint.port},
    })
    return redirect(reverse("relay:troubleshoot", args=[user.pk]) + "#test-message")


def _kept_outcome(data: dict[str, Any]) -> TestOutcome:
    kept = data["outcome"]
    return TestOutcome(
        ok=kept["ok"], summary=kept["summary"], endpoint=Endpoint(**kept["endpoint"]),
        transcript=[Line(**line) for line in kept["transcript"]], queue_id=kept["queue_id"],
    )
