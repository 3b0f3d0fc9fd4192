"""The API keys page: list, create (the key is shown once) and revoke; owners and admins."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.actions.api_keys import create_api_key, revoke_api_key
from accounts.audit import Actor
from accounts.forms import ApiKeyForm
from accounts.models import ApiKey, Role
from accounts.tenancy import AccountRequest, member_required

# A just-created key, shown once on the page the creation redirects to.
NEW_KEY_SESSION = "smtpplus_new_api_key"


def _page(request: AccountRequest, form: ApiKeyForm, status: int = 200) -> HttpResponse:
    return render(request, "accounts/api_keys.html", {
        "keys": ApiKey.objects.filter(account=request.account).select_related(
            "created_by", "smtp_user"),
        "form": form,
        "new_key": request.session.pop(NEW_KEY_SESSION, None),
        "now": timezone.now(),
    }, status=status)


@never_cache
@member_required(Role.ADMIN)
def api_keys(request: AccountRequest) -> HttpResponse:
    return _page(request, ApiKeyForm(account=request.account))


@member_required(Role.ADMIN)
@require_POST
def api_key_create(request: AccountRequest) -> HttpResponse:
    form = ApiKeyForm(request.POST, account=request.account)
    if not form.is_valid():
        return _page(request, form, status=400)
    days = form.cleaned_data["expires_days"]
    key, raw = create_api_key(
        request.account, name=form.cleaned_data["name"], role=form.cleaned_data["role"],
        expires_at=timezone.now() + timedelta(days=days) if days else None,
        allowed_networks=form.cleaned_data["networks"], created_by=request.user,
        actor=Actor.from_request(request), smtp_user=form.cleaned_data["smtp_user"],
    )
    request.session[NEW_KEY_SESSION] = {"name": key.name, "key": raw}
    return redirect("accounts:api_keys")


@member_required(Role.ADMIN)
@require_POST
def api_key_revoke(request: AccountRequest, pk: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=pk, account=request.account)
    if revoke_api_key(key, actor=Actor.from_request(request)):
        messages.success(request, f"API key “{key.name}” revoked: it stops working now.")
    return redirect("accounts:api_keys")
