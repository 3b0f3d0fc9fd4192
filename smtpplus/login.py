"""Console login with a brake on password guessing.

Failed logins are counted per client IP and per (IP, username) in the cache; past the
limit the form refuses to check passwords until the window has passed. Successful logins
do not reset the per-IP count, so one valid account cannot be used to keep guessing.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import HttpRequest


def _keys(request: HttpRequest | None, username: str) -> tuple[str, str]:
    ip = (request.META.get("REMOTE_ADDR") if request is not None else None) or "-"
    return f"console-login-ip:{ip}", f"console-login-user:{ip}:{username.strip().lower()}"


class ThrottledAuthenticationForm(AuthenticationForm):
    def clean(self) -> dict[str, Any]:
        username = self.data.get("username", "")
        ip_key, user_key = _keys(self.request, username)
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
            return super().clean()
        except ValidationError:
            for key in (ip_key, user_key):
                if cache.add(key, 1, settings.CONSOLE_LOGIN_WINDOW) is False:
                    try:
                        cache.incr(key)
                    except ValueError:
                        cache.set(key, 1, settings.CONSOLE_LOGIN_WINDOW)
            raise


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    redirect_authenticated_user = True
