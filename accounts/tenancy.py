"""The current account of a console request, and the role checks views use.

Every console query is scoped to `request.account`; an object of another account is a
404 (never a 403 that would confirm it exists).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from functools import wraps
from typing import Any, cast

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect

from accounts.models import Account, Membership, Role

SESSION_KEY = "smtpplus_account_id"


class ConsoleRequest(HttpRequest):
    """A request `CurrentAccountMiddleware` has seen: the account, or None without one."""

    membership: Membership | None
    account: Account | None
    # Every membership of the user, by account name (the account switcher's list).
    memberships: list[Membership]


class AccountRequest(HttpRequest):
    """What a `member_required` view receives: a logged-in member of `account`.

    The middleware sets the attributes and the decorator guarantees they are not None;
    views annotate `request` with this type instead of `HttpRequest`.
    """

    user: User
    membership: Membership
    account: Account


class CurrentAccountMiddleware:
    """Sets `request.membership` and `request.account` (or None) for logged-in users, and
    `request.memberships`: all of them, read in one query per request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, http_request: HttpRequest) -> HttpResponse:
        request = cast(ConsoleRequest, http_request)
        request.membership = None
        request.account = None
        request.memberships = []
        if request.user.is_authenticated:
            request.memberships = list(
                Membership.objects.filter(user=request.user)
                .select_related("account")
                .order_by("account__name", "account_id")
            )
            chosen = request.session.get(SESSION_KEY)
            membership = next(
                (m for m in request.memberships if m.account_id == chosen),
                request.memberships[0] if request.memberships else None,
            )
            if membership is not None:
                request.membership = membership
                request.account = membership.account
        return self.get_response(request)


def switch_account(request: HttpRequest, account: Account) -> None:
    request.session[SESSION_KEY] = account.pk


def account_context(http_request: HttpRequest) -> dict[str, Any]:
    request = cast(ConsoleRequest, http_request)
    membership = getattr(request, "membership", None)
    # A membership is only ever set for a logged-in user, with the list it came from.
    if membership is None or not request.user.is_authenticated:
        return {}
    return {
        "account": membership.account,
        "membership": membership,
        "all_memberships": request.memberships,
    }


ViewFunc = Callable[..., HttpResponse]


def member_required(role: str = Role.VIEWER) -> Callable[[ViewFunc], ViewFunc]:
    """Require a logged-in member of the current account with at least `role`.

    viewer < admin < owner. A user with no account is sent to the no-account page.
    """
    rank = {Role.VIEWER: 0, Role.ADMIN: 1, Role.OWNER: 2}

    def decorator(view: ViewFunc) -> ViewFunc:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            membership = getattr(request, "membership", None)
            if membership is None:
                return redirect("no_account")
            if rank[Role(membership.role)] < rank[Role(role)]:
                raise PermissionDenied("Your role in this account does not allow this.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def client_ip(request: HttpRequest) -> str | None:
    """The address of the browser behind `request`, for login throttling and the audit log.

    With `BEHIND_TLS_PROXY` the console only ever sees its reverse proxy as the peer: the
    client is the last `X-Forwarded-For` entry, the one the proxy itself appended (earlier
    entries come from the client and prove nothing). Without it, or when the header is
    missing or not an address, the peer address.
    """
    if settings.BEHIND_TLS_PROXY:
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return request.META.get("REMOTE_ADDR") or None
