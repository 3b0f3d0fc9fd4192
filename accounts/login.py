"""Console passwords with a brake on guessing: the login form and the re-authentication
before revealing or resetting SMTP+ credentials.

Failed password checks are counted in the database (`accounts.LoginFailureCount`), so
every console process counts on the same rows, under three keys:

* the client's network — its IPv4 address, or the /64 of its IPv6 address (one host
  usually has a whole /64) — up to CONSOLE_LOGIN_FAILURES_PER_IP, whatever the usernames;
* that network and the username, up to CONSOLE_LOGIN_FAILURES_PER_USER;
* the username from every network together, up to CONSOLE_LOGIN_FAILURES_PER_USERNAME
  (higher: it stops guessing spread over many networks).

Past a limit the forms refuse to check passwords until the window
(CONSOLE_LOGIN_WINDOW, counted from the first failure) has ended. So that strangers
cannot keep a member out by failing logins under their username, the per-username limit
does not apply to a browser that has logged in as that username before (a signed
cookie set at each successful login); the two per-network limits always do.
Both forms count on the same keys, so a guess on one is a guess on the other.
Successful checks reset nothing, so one valid account cannot be used to keep guessing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.models import LoginFailureCount
from accounts.tenancy import client_ip

KNOWN_BROWSER_COOKIE = "smtpplus_known_login"
KNOWN_BROWSER_DAYS = 180


def client_network(ip: str | None) -> str:
    """What one client can easily vary counts as one: an IPv4 address, or the /64 of an
    IPv6 address (an IPv4-mapped IPv6 address is its IPv4 address)."""
    try:
        address = ipaddress.ip_address((ip or "").split("%", 1)[0])
    except ValueError:
        return "-"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def _username_digest(username: str) -> str:
    # Fixed length for the key column, and no usernames stored in the table.
    return salted_hmac("accounts.login.username", username.strip().lower()).hexdigest()[:32]


def _keys(request: HttpRequest | None, username: str) -> tuple[str, str, str]:
    network = client_network(client_ip(request) if request is not None else None)
    user = _username_digest(username)
    return f"net:{network}", f"net-user:{network}:{user}", f"user:{user}"


def _is_known_browser(request: HttpRequest | None, username: str) -> bool:
    if request is None:
        return False
    value = request.get_signed_cookie(
        KNOWN_BROWSER_COOKIE, default="", salt=KNOWN_BROWSER_COOKIE,
        max_age=KNOWN_BROWSER_DAYS * 86400,
    )
    return bool(value) and constant_time_compare(value or "", _username_digest(username))


def remember_browser(response: HttpResponse, username: str) -> None:
    """Mark the browser that just logged in as `username` as one of theirs."""
    response.set_signed_cookie(
        KNOWN_BROWSER_COOKIE, _username_digest(username), salt=KNOWN_BROWSER_COOKIE,
        max_age=KNOWN_BROWSER_DAYS * 86400, httponly=True, samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


def _count_failure(keys: tuple[str, ...]) -> None:
    now = timezone.now()
    window_ends = now + timedelta(seconds=settings.CONSOLE_LOGIN_WINDOW)
    with transaction.atomic():
        LoginFailureCount.objects.filter(window_ends__lte=now).delete()
        for key in keys:
            # Increment in the database (never read-modify-write): concurrent failures in
            # other processes all count. A key seen for the first time is created; if
            # another process created it in between, increment that row.
            for _ in range(3):
                rows = LoginFailureCount.objects.filter(key=key, window_ends__gt=now)
                if rows.update(failures=F("failures") + 1):
                    break
                try:
                    with transaction.atomic():
                        LoginFailureCount.objects.create(key=key, failures=1, window_ends=window_ends)
                    break
                except IntegrityError:
                    continue


def _refusal(request: HttpRequest | None, username: str) -> str:
    """Why the password must not be checked now ("" if it may be)."""
    net_key, net_user_key, user_key = keys = _keys(request, username)
    counts = dict(
        LoginFailureCount.objects.filter(key__in=keys, window_ends__gt=timezone.now())
        .values_list("key", "failures")
    )
    if (
        counts.get(net_key, 0) >= settings.CONSOLE_LOGIN_FAILURES_PER_IP
        or counts.get(net_user_key, 0) >= settings.CONSOLE_LOGIN_FAILURES_PER_USER
    ):
        return "from your address"
    if counts.get(user_key, 0) >= settings.CONSOLE_LOGIN_FAILURES_PER_USERNAME and not (
        _is_known_browser(request, username)
    ):
        return "for this username"
    return ""


@contextmanager
def password_guess_brake(request: HttpRequest | None, username: str) -> Iterator[None]:
    """Wrap a console password check for `username`.

    Raises a "throttled" ValidationError, without running the check, once this client
    or this username has failed too often; a ValidationError raised by the check counts
    as a failure.
    """
    if reason := _refusal(request, username):
        minutes = max(1, settings.CONSOLE_LOGIN_WINDOW // 60)
        raise ValidationError(
            f"Too many failed logins {reason}. Try again in {minutes} minutes.",
            code="throttled",
        )
    try:
        yield
    except ValidationError:
        _count_failure(_keys(request, username))
        raise


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self) -> dict[str, Any]:
        with password_guess_brake(self.request, self.data.get("username", "")):
            return super().clean()


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        response = super().form_valid(form)
        remember_browser(response, form.get_user().get_username())
        return response
