"""An SMTP+ user's delivery report settings page (where DSNs for its mail go)."""

from __future__ import annotations

from django.contrib import messages as flash
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from accounts.audit import Actor
from accounts.models import Role, SmtpUser
from accounts.tenancy import AccountRequest, member_required
from relay import dsn_settings
from relay.models import DsnMode


@member_required()
def dsn_settings_page(request: AccountRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(SmtpUser, pk=pk, account=request.account)
    return render(request, "relay/dsn_settings.html", {
        "smtp_user": user,
        "settings": dsn_settings.current(user),
        "modes": DsnMode.choices,
        "can_edit": request.membership.can_edit,
    })


@member_required(Role.ADMIN)
@require_POST
def dsn_settings_save(request: AccountRequest, pk: int) -> HttpResponse:
    user = get_object_or_404(SmtpUser, pk=pk, account=request.account)
    try:
        dsn_settings.change(user, request.POST.get("mode", ""), request.POST.get("address", ""),
                            Actor.from_request(request))
    except dsn_settings.InvalidDsnSettings as exc:
        flash.error(request, str(exc))
    else:
        flash.success(request, "Delivery report settings saved.")
    return redirect("relay:dsn_settings", pk=user.pk)
