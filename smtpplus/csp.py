"""Content-Security-Policy on every response of the console.

The console's pages load their one script and their one style sheet from /static/ and
carry no inline script, style or event handler, so a strict policy costs nothing and
turns any markup an attacker might smuggle into a page into inert text. Django 5.2 has
no CSP support of its own; the policy is one setting (`CONTENT_SECURITY_POLICY`).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    """Adds `settings.CONTENT_SECURITY_POLICY` (unless empty) to responses without one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = " ".join(settings.CONTENT_SECURITY_POLICY.split())
        if policy and HEADER not in response:
            response[HEADER] = policy
        return response
