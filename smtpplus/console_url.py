"""Where the console says it lives (SMTPPLUS_CONSOLE_URL) versus where it is reached.

Alert emails and invitations carry links built from SMTPPLUS_CONSOLE_URL. When the console
is reached at another address (`up --bind` moved, a proxy in front, a typo), those links
lead nowhere, and nothing else would tell an owner before a recipient complains.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest


def _origin(url: str) -> tuple[str, str]:
    """(scheme, host[:port]) with the scheme's default port dropped, lower case."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    netloc = parts.netloc.lower().rsplit("@", 1)[-1]
    default = {"http": ":80", "https": ":443"}.get(scheme, "")
    if default and netloc.endswith(default):
        netloc = netloc[: -len(default)]
    return scheme, netloc


def reached_origin(request: HttpRequest) -> str:
    """The scheme and host this request reached the console at."""
    return f"{request.scheme}://{request.get_host()}"


def console_url_mismatch(request: HttpRequest) -> str | None:
    """The address the console was reached at, when links point elsewhere; else None."""
    reached = reached_origin(request)
    if _origin(reached) == _origin(settings.SMTPPLUS_CONSOLE_URL):
        return None
    return reached


def console_url_context(request: HttpRequest) -> dict[str, str]:
    """A warning for owners only: they are the ones who can fix the setting."""
    membership = getattr(request, "membership", None)
    if membership is None or not membership.is_owner:
        return {}
    reached = console_url_mismatch(request)
    if reached is None:
        return {}
    return {"console_url_reached": reached, "console_url_setting": settings.SMTPPLUS_CONSOLE_URL}
