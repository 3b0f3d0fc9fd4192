"""Console passwords with a brake on guessing: the login form and the re-authentication
before revealing or resetting SMTP+ credentials.

Failed password checks are counted per client IP and per (IP, username) in the cache;
past the limit the forms refuse to check passwords until the window has passed. Both
forms count on the same keys, so a guess on one is a guess on the other. Successful
checks do not reset the per-IP count, so one valid account cannot be used to keep
guessing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from accounts.tenancy import client_ip


def _keys(request: HttpRequest | None, username: str) -> tuple[str, str]:
    ip = (client_ip(request) if request is not None else None) or "-"
    return f"console-login-ip:{ip}", f"console-login-user:{ip}:{username.strip().lower()}"


def _count_failure(keys: tuple[str, ...]) -> None:
    for key in keys:
        if cache.add(key, 1, settings.CONSOLE_LOGIN_WINDOW) is False:
            try:
                cache.incr(key)
            except ValueError:
                cache.set(key, 1, settings.CONSOLE_LOGIN_WINDOW)


@contextmanager
def password_guess_brake(request: HttpRequest | None, username: str) -> Iterator[None]:
    """Wrap a console password check for `username`.

    Raises a "throttled" ValidationError, without running the check, once this client
    has failed too often; a ValidationError raised by the check counts as a failure.
    """
    ip_key, user_key = _keys(request, username)
    if (
        cache.get(ip_key, 0) >= settings.CONSOLE_LOGIN_FAILURES_PER_IP
        or cache.get(user_key, 0) >= settings.CONSOLE_LOGIN_FAILURES_PER_USER
    ):
        minutes = max(1, settings.CONSOLE_LOGIN_WINDOW // 60)
        raise ValidationError(
            f"Too many failed logins from your address. Try again in {minutes} minutes.",
            code="throttled",
        )
    try:
        yield
    except ValidationError:
        _count_failure((ip_key, user_key))
        raise


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self) -> dict[str, Any]:
        with password_guess_brake(self.request, self.data.get("username", "")):
            return super().clean()


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    redirect_authenticated_user = True
