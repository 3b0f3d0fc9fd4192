"""Revealing and resetting SMTP+ passwords, behind a fresh console re-authentication.

Both actions are POST-only, need the admin's console password re-entered within
`SMTPPLUS_REAUTH_SECONDS`, answer with `Cache-Control: no-store` and are audited by
`accounts.actions`; the password is then shown once on the user's page, after a redirect.
Without a fresh re-authentication the admin is sent to the
confirm-password page, whose success replays the original POST (a 307 redirect keeps
the method), so the page the admin asked for is shown straight away.
"""

from __future__ import annotations

import time
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters

from accounts import audit
from accounts.actions import smtp_users
from accounts.audit import Actor
from accounts.forms import ConfirmPasswordForm
from accounts.models import Role, SmtpUser
from accounts.tenancy import AccountRequest, member_required
from accounts.views.users import post_required, scoped_user, show_password_next

REAUTH_SESSION_KEY = "smtpplus_reauth"
# POST actions the confirm page replays after a successful re-authentication.
REPLAYED_VIEWS = {
    "accounts:smtpuser_reveal": "reveal the password of",
    "accounts:smtpuser_reset_password": "reset the password of",
}


def mark_reauthenticated(request: HttpRequest) -> None:
    request.session[REAUTH_SESSION_KEY] = {"user": request.user.pk, "at": time.time()}


def reauth_is_fresh(request: HttpRequest) -> bool:
    """Has this console user re-entered their password within SMTPPLUS_REAUTH_SECONDS?"""
    value = request.session.get(REAUTH_SESSION_KEY)
    if not isinstance(value, dict) or value.get("user") != request.user.pk:
        return False
    try:
        elapsed = time.time() - float(value["at"])
    except (KeyError, TypeError, ValueError):
        return False
    return 0 <= elapsed <= settings.SMTPPLUS_REAUTH_SECONDS


def redirect_to_confirm(next_url: str) -> HttpResponse:
    url = f"{reverse('accounts:confirm_password')}?{urlencode({'next': next_url})}"
    return HttpResponseRedirect(url, status=303)


@sensitive_post_parameters("password")
@member_required(Role.ADMIN)
def smtpuser_reveal(request: AccountRequest, pk: int) -> HttpResponse:
    smtp_user = scoped_user(request, pk)
    if not_allowed := post_required(request):
        return not_allowed
    if not reauth_is_fresh(request):
        return redirect_to_confirm(reverse("accounts:smtpuser_reveal", args=[pk]))
    smtp_users.reveal_password(smtp_user, actor=Actor.from_request(request))
    show_password_next(request, smtp_user, "Revealed for you; this was recorded in the audit log.")
    return credentials_section(smtp_user)


@sensitive_post_parameters("password")
@member_required(Role.ADMIN)
def smtpuser_reset_password(request: AccountRequest, pk: int) -> HttpResponse:
    smtp_user = scoped_user(request, pk)
    if not_allowed := post_required(request):
        return not_allowed
    if not reauth_is_fresh(request):
        return redirect_to_confirm(reverse("accounts:smtpuser_reset_password", args=[pk]))
    smtp_users.reset_password(smtp_user, actor=Actor.from_request(request))
    show_password_next(
        request, smtp_user,
        "This is the new password. The old one no longer works: "
        "update every application that sends with this user.",
    )
    return credentials_section(smtp_user)


def credentials_section(smtp_user: SmtpUser) -> HttpResponse:
    """To the user's page (GET), which shows the password once: a reload repeats nothing."""
    return HttpResponseRedirect(f"{smtp_user.get_absolute_url()}#credentials", status=303)


def _pending_action(request: AccountRequest, next_url: str) -> tuple[str, SmtpUser | None]:
    """(view name, SMTP+ user) of a replayable `next` URL, or ("", None)."""
    try:
        match = resolve(urlsplit(next_url).path)
    except Resolver404:
        return "", None
    if match.view_name not in REPLAYED_VIEWS:
        return "", None
    pk = match.kwargs.get("pk")
    if pk is None:
        return match.view_name, None
    return match.view_name, SmtpUser.objects.filter(pk=pk, account=request.account).first()


@sensitive_post_parameters("password")
@member_required()
def confirm_password(request: AccountRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = ""
    view_name, smtp_user = _pending_action(request, next_url)
    form = ConfirmPasswordForm(request, request.POST or None)
    if request.method == "POST" and not form.is_valid():
        # A wrong password here is someone at a logged-in console guessing: audited.
        audit.record("console.reauth_failed", account=request.account,
                     actor=Actor.from_request(request),
                     target=smtp_user, target_label=str(smtp_user or ""),
                     details={"for": REPLAYED_VIEWS.get(view_name, "")})
    elif request.method == "POST":
        mark_reauthenticated(request)
        if view_name:
            # 307 keeps POST: the browser re-sends this form (with its CSRF token) to the
            # action, which now sees a fresh re-authentication.
            return HttpResponseRedirect(next_url, status=307)
        return HttpResponseRedirect(next_url or reverse("accounts:smtpuser_list"), status=303)
    context = {
        "form": form,
        "next": next_url,
        "action": REPLAYED_VIEWS.get(view_name, ""),
        "smtp_user": smtp_user,
        "minutes": max(1, settings.SMTPPLUS_REAUTH_SECONDS // 60),
    }
    return render(request, "accounts/confirm_password.html", context)
