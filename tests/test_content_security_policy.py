"""Every response of the console carries the Content-Security-Policy setting (the real
browser proves the pages obey it: tests/e2e/test_content_security_policy.py)."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.conftest import login

STRICT = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def test_the_default_policy_is_strict(settings):
    assert settings.CONTENT_SECURITY_POLICY == STRICT


@pytest.mark.parametrize(
    ("who", "path", "status"),
    [
        (None, "/login/", 200),
        (None, "/users/", 302),  # the redirect to log in
        (None, "/static/js/smtpplus.js", 200),
        ("alice", "/", 200),
        ("alice", "/users/999999/", 404),
        ("victor", "/users/new/", 403),
        ("alice", "/admin/", 302),  # operators only
    ],
)
def test_every_kind_of_response_carries_the_policy(client, cast, who, path, status):
    if who:
        login(client, getattr(cast, who))
    response = client.get(path)
    assert response.status_code == status
    assert response["Content-Security-Policy"] == STRICT


def test_the_policy_is_a_setting_and_empty_sends_none(client, cast, settings):
    settings.CONTENT_SECURITY_POLICY = "default-src 'self';\n  img-src https://cdn.example.net"
    assert client.get(reverse("login"))["Content-Security-Policy"] == (
        "default-src 'self'; img-src https://cdn.example.net")
    settings.CONTENT_SECURITY_POLICY = ""
    assert "Content-Security-Policy" not in client.get(reverse("login"))


def test_no_console_template_has_inline_script_style_or_handlers():
    """Markup the policy would block, found before a browser does (emails are not pages)."""
    import re
    from pathlib import Path

    from django.conf import settings as django_settings

    pattern = re.compile(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son[a-z]+=|javascript:", re.I)
    found = []
    for template in Path(django_settings.BASE_DIR, "templates").rglob("*.html"):
        if "emails" in template.parts:
            continue
        for n, line in enumerate(template.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{template.name}:{n}: {line.strip()}")
    assert not found, "\n".join(found)
