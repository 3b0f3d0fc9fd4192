"""Members page, invitations, and the account switcher."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.db import IntegrityError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts.actions import invitations
from accounts.actions.invitations import InvitationForSomeoneElse, InvitationUnusable, State
from accounts.actions.members import MemberError, change_role, remove_member
from accounts.audit import Actor
from accounts.forms import InviteForm, RoleForm, SetPasswordForm
from accounts.models import Invitation, Membership, Role
from accounts.tenancy import AccountRequest, member_required, switch_account

# The link of a just-created invitation, shown once on the members page after the redirect.
NEW_LINK_KEY = "smtpplus_new_invite"


def _members_context(request: AccountRequest, form: InviteForm | None = None) -> dict[str, Any]:
    account = request.account
    is_owner = request.membership.is_owner
    rank = {Role.OWNER: 0, Role.ADMIN: 1, Role.VIEWER: 2}
    memberships = sorted(
        Membership.objects.filter(account=account).select_related("user"),
        key=lambda m: (rank[Role(m.role)], m.user.get_username()),
    )
    return {
        "memberships": memberships,
        "invitations": Invitation.objects.filter(account=account, accepted__isnull=True)
        .select_related("invited_by")
        .order_by("-created"),
        "is_owner": is_owner,
        "form": form if form is not None else (InviteForm(account=account) if is_owner else None),
        "roles": Role.choices,
        "new_invite": request.session.pop(NEW_LINK_KEY, None) if is_owner else None,
        "now": timezone.now(),
    }


@member_required()
def members(request: AccountRequest) -> HttpResponse:
    return render(request, "accounts/members.html", _members_context(request))


@member_required(Role.OWNER)
@require_POST
def invite(request: AccountRequest) -> HttpResponse:
    account = request.account
    form = InviteForm(request.POST, account=account)
    if not form.is_valid():
        return render(request, "accounts/members.html", _members_context(request, form), status=400)
    result = invitations.invite(
        account, form.cleaned_data["email"], form.cleaned_data["role"],
        actor=Actor.from_request(request),
    )
    request.session[NEW_LINK_KEY] = {
        "email": result.invitation.email,
        "link": result.link,
        "email_error": result.email_error,
    }
    return redirect("accounts:members")


@member_required(Role.OWNER)
@require_POST
def invitation_cancel(request: AccountRequest, pk: int) -> HttpResponse:
    invitation = get_object_or_404(
        Invitation, pk=pk, account=request.account, accepted__isnull=True
    )
    invitations.cancel(invitation, actor=Actor.from_request(request))
    messages.success(request, f"The invitation to {invitation.email} was cancelled.")
    return redirect("accounts:members")


@member_required(Role.OWNER)
@require_POST
def member_role(request: AccountRequest, pk: int) -> HttpResponse:
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=pk, account=request.account
    )
    form = RoleForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose owner, admin or viewer.")
        return redirect("accounts:members")
    try:
        changed = change_role(
            membership, form.cleaned_data["role"], actor=Actor.from_request(request)
        )
    except MemberError as exc:
        messages.error(request, str(exc))
    else:
        if changed:
            messages.success(
                request,
                f"{membership.user.get_username()} is now {Role(form.cleaned_data['role']).label.lower()}.",
            )
    return redirect("accounts:members")


@member_required(Role.OWNER)
def member_remove(request: AccountRequest, pk: int) -> HttpResponse:
    """GET: a confirmation page. POST: remove the member."""
    membership = get_object_or_404(
        Membership.objects.select_related("user"), pk=pk, account=request.account
    )
    if request.method != "POST":
        return render(request, "accounts/member_remove.html", {"target": membership})
    try:
        remove_member(membership, actor=Actor.from_request(request))
    except MemberError as exc:
        messages.error(request, str(exc))
        return redirect("accounts:members")
    name = membership.user.get_username()
    if membership.user_id == request.user.pk:
        messages.success(request, f"You left {membership.account.name}.")
        return redirect("dashboard")
    messages.success(request, f"{name} was removed from {membership.account.name}.")
    return redirect("accounts:members")


@login_required
@require_POST
def switch(request: HttpRequest) -> HttpResponse:
    membership = get_object_or_404(
        Membership.objects.select_related("account"),
        user=request.user,
        account__slug=request.POST.get("account", ""),
    )
    switch_account(request, membership.account)
    return redirect("dashboard")


_UNUSABLE_STATUS = {State.UNKNOWN: 404, State.USED: 410, State.EXPIRED: 410}


def _unusable(request: HttpRequest, state: State) -> HttpResponse:
    return render(
        request, "accounts/invite_unusable.html", {"state": state.value},
        status=_UNUSABLE_STATUS[state],
    )


def _joined(request: HttpRequest, membership: Membership, created: bool) -> HttpResponse:
    switch_account(request, membership.account)
    if created:
        messages.success(
            request, f"Welcome to {membership.account.name}: you are {membership.get_role_display().lower()}."
        )
    else:
        messages.info(request, f"You were already a member of {membership.account.name}.")
    return redirect("dashboard")


def _for_someone_else(request: HttpRequest, context: dict[str, Any]) -> HttpResponse:
    """The link was opened by another console user than the invitee: refused, with a way
    to log out and come back to it as the invited address."""
    return render(
        request, "accounts/invite_accept.html", {**context, "mode": "other"}, status=403,
    )


@never_cache
def invite_accept(request: HttpRequest, token: str) -> HttpResponse:
    """The link of an invitation. Public: the token is the credential."""
    state, invitation = invitations.lookup(token)
    if state is not State.VALID or invitation is None:
        return _unusable(request, state)
    context: dict[str, Any] = {"invitation": invitation}

    if request.user.is_authenticated:
        if not invitations.is_for(invitation, request.user):
            return _for_someone_else(request, context)
        if request.method == "POST":
            try:
                membership, created = invitations.accept(
                    invitation, request.user, actor=Actor.from_request(request)
                )
            except InvitationUnusable as exc:
                return _unusable(request, exc.state)
            except InvitationForSomeoneElse:
                return _for_someone_else(request, context)
            return _joined(request, membership, created)
        return render(request, "accounts/invite_accept.html", {**context, "mode": "join"})

    if invitations.existing_user(invitation.email) is not None:
        login_url = reverse("login") + "?" + urlencode({"next": request.path})
        return render(
            request, "accounts/invite_accept.html",
            {**context, "mode": "login", "login_url": login_url},
        )

    form = SetPasswordForm(request.POST or None, email=invitation.email)
    if request.method == "POST" and form.is_valid():
        try:
            user, membership = invitations.accept_as_new_user(
                invitation, form.cleaned_data["password1"], actor=Actor.from_request(request)
            )
        except InvitationUnusable as exc:
            return _unusable(request, exc.state)
        except IntegrityError:
            # The same address signed up in another tab a moment ago.
            return redirect(request.path)
        login(request, user, backend=settings.AUTHENTICATION_BACKENDS[0])
        return _joined(request, membership, True)
    return render(request, "accounts/invite_accept.html", {**context, "mode": "signup", "form": form})
