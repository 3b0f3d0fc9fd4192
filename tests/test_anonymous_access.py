"""Anonymous visitors are sent to the login page from every console URL, whatever the
method: a POST-only page answers a GET with the login redirect too, not with a 405 that
tells a stranger which pages exist and how to call them."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import resolve_url

from tests.test_tenant_isolation import console_routes

# Public by design: a health probe for load balancers, and the Prometheus page, which
# has its own token or network allow-list (and is a 404 when neither is set), and the
# icon's old address.
PUBLIC = {"healthz", "metrics", "favicon"}


def test_every_console_url_sends_anonymous_visitors_to_log_in_for_any_method(client, cast):
    login_url = resolve_url(settings.LOGIN_URL)
    routes, _ = console_routes()
    checked, failures = 0, []
    for route in routes:
        if route.name in PUBLIC or not route.only_int_kwargs:
            continue
        url = route.url({name: cast.acme_smtp.pk for name in route.int_kwargs})
        answers = {m: getattr(client, m)(url) for m in ("get", "post", "put", "delete")}
        wrong = {
            m.upper(): r.status_code for m, r in answers.items()
            if r.status_code != 302 or not r["Location"].startswith(login_url)
        }
        if wrong:
            failures.append(f"{url} ({route.name}) answered {wrong}")
        checked += 1
    assert checked >= 30
    assert not failures, "console URLs open to anonymous visitors:\n" + "\n".join(failures)



def test_post_only_pages_send_an_anonymous_get_to_log_in(client, cast):
    """The pages that only take POST, named: the generic walk above covers them too, this
    keeps the promise visible should the walk ever skip one."""
    from django.urls import reverse

    login_url = resolve_url(settings.LOGIN_URL)
    pk = cast.acme_smtp.pk
    post_only = [
        reverse("accounts:member_invite"),
        reverse("accounts:invitation_cancel", args=[pk]),
        reverse("accounts:member_role", args=[pk]),
        reverse("accounts:switch"),
        reverse("accounts:smtpuser_set_active", args=[pk]),
        reverse("accounts:smtpuser_reveal", args=[pk]),
        reverse("accounts:smtpuser_reset_password", args=[pk]),
        reverse("accounts:smtpuser_senders_add", args=[pk]),
        reverse("relay:message_retry", args=[pk]),
        reverse("relay:message_cancel", args=[pk]),
        reverse("relay:troubleshoot_authorize", args=[pk]),
        reverse("relay:test_message", args=[pk]),
        reverse("alerts:rule_toggle", args=[pk]),
        reverse("alerts:rule_test", args=[pk]),
        reverse("alerts:rule_reset_secret", args=[pk]),
    ]
    for url in post_only:
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"] == f"{login_url}?next={url}", url
