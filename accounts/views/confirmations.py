"""Address confirmation: the public page behind the link mailed to an address (GET shows
it, only the Confirm button's POST confirms) and the admins' "Resend confirmation"."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from accounts.actions.confirmations import State, confirm_address, lookup, send_confirmation
from accounts.audit import Actor
from accounts.models import AuthorizedEmail, Role
from accounts.tenancy import AccountRequest, member_required


@never_cache
@require_http_methods(["GET", "POST"])
def address_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """Public: the token is the credential. A GET never confirms (link scanners)."""
    if request.method == "POST":
        state, entry = confirm_address(token, Actor.from_request(request).labelled(
            "the address's owner, by its confirmation link"))
        done = state is State.VALID
    else:
        state, entry = lookup(token)
        done = False
    status = 200 if state is State.VALID else 410 if state is State.EXPIRED else 404
    return render(request, "accounts/address_confirm.html", {
        "state": state.value, "entry": entry, "done": done,
        "account_name": entry.smtp_user.account.name if entry is not None else "",
    }, status=status)


@member_required(Role.ADMIN)
@require_POST
def email_resend(request: AccountRequest, pk: int, entry_pk: int) -> HttpResponse:
    entry = get_object_or_404(
        AuthorizedEmail.objects.select_related("smtp_user__account"),
        pk=entry_pk, smtp_user__pk=pk, smtp_user__account=request.account)
    if entry.confirmed_at is not None:
        messages.info(request, f"{entry.display} is already confirmed.")
    else:
        error = send_confirmation(entry, actor=Actor.from_request(request))
        if error:
            messages.error(request, f"The confirmation email to {entry.display} could not be "
                                    f"sent ({error}); try again later.")
        else:
            messages.success(request, f"A new confirmation link was mailed to {entry.display}; "
                                      "the previous one no longer works.")
    return redirect("accounts:smtpuser_detail", pk=pk)
