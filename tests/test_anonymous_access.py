"""Anonymous visitors are sent to the login page from every console URL."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import resolve_url

from tests.test_tenant_isolation import console_routes

# Public by design: a health probe for load balancers.
PUBLIC = {"healthz"}


def test_every_console_url_sends_anonymous_visitors_to_log_in(client, cast):
    login_url = resolve_url(settings.LOGIN_URL)
    routes, _ = console_routes()
    checked, failures = 0, []
    for route in routes:
        if route.name in PUBLIC or not route.only_int_kwargs:
            continue
        url = route.url({name: cast.acme_smtp.pk for name in route.int_kwargs})
        answers = {m: getattr(client, m)(url) for m in ("get", "post")}
        redirected = [
            m for m, r in answers.items()
            if r.status_code == 302 and r["Location"].startswith(login_url)
        ]
        # A POST-only view may refuse a GET (405) before asking who is there.
        others_ok = all(
            r.status_code == 405 for m, r in answers.items() if m not in redirected
        )
        if not redirected or not others_ok:
            codes = {m.upper(): r.status_code for m, r in answers.items()}
            failures.append(f"{url} ({route.name}) answered {codes}")
        checked += 1
    assert checked >= 10
    assert not failures, "console URLs open to anonymous visitors:\n" + "\n".join(failures)

