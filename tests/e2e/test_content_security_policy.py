"""In a real browser: every console page obeys the strict Content-Security-Policy (no
inline script, style or event handler is blocked, because there is none), and the
console's scripts still work under it: confirmations, copy buttons, the account switcher.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.urls import Resolver404, resolve
from django.utils import timezone

from accounts.actions import invitations
from accounts.actions.confirmations import token_digest
from accounts.models import AuthorizedEmail, Membership, Role, SendingDomain
from alerts.models import AlertRule, Notification
from relay.models import EventKind, Recipient, RelayEvent
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.relay.console.test_messages import fail_recipient, make_message
from tests.test_tenant_isolation import console_routes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Registered before any page script runs; Playwright's init scripts are not subject to
# the page's policy, so the listener sees every violation, from the first byte on.
WATCH_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", function (e) {
  window.__cspViolations.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline")
    + " at " + e.sourceFile + ":" + e.lineNumber);
});
"""
# Console pages that only take POST (a GET is refused) or are not HTML pages.
NOT_PAGES = {
    "healthz", "metrics", "favicon", "accounts:smtpuser_set_active", "accounts:smtpuser_reveal",
    "accounts:smtpuser_reset_password", "accounts:smtpuser_senders_add",
    "accounts:smtpuser_domain_remove", "accounts:smtpuser_domain_subdomains",
    "accounts:smtpuser_email_remove", "accounts:smtpuser_send_as", "accounts:member_invite",
    "accounts:member_role", "accounts:invitation_cancel", "accounts:switch",
    "relay:message_retry", "relay:message_cancel", "relay:troubleshoot_authorize",
    "relay:test_message", "relay:troubleshoot_unblock", "alerts:rule_toggle", "alerts:rule_test",
    "alerts:rule_reset_secret", "accounts:api_key_create", "accounts:api_key_revoke",
    "relay:suppressions_add", "relay:suppressions_remove", "relay:suppressions_import",
    "relay:suppressions_export", "relay:dsn_settings_save",
    "accounts:domain_add", "accounts:domain_check", "accounts:domain_subdomains",
    "accounts:domain_remove", "accounts:smtpuser_email_resend",
}


def wait_until(page: Any, condition: str, tries: int = 100) -> None:
    """Poll `condition` with page.evaluate (a DevTools call, which the page's policy does
    not cover) instead of wait_for_function (whose polling the policy blocks)."""
    for _ in range(tries):
        if page.evaluate(condition):
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"never true: {condition}")


class Visits:
    """Opens pages, checks each one's policy header, and collects what the browser reports."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console_errors: list[str] = []
        self.names: set[str] = set()
        page.context.add_init_script(WATCH_VIOLATIONS)
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.console_errors.append(f"page error: {exc}"))

    def _on_console(self, msg: Any) -> None:
        # Chromium reports a blocked resource as "Refused to … Content Security Policy".
        if "Content Security Policy" in msg.text or msg.text.startswith("Refused to"):
            self.console_errors.append(f"{self.page.url}: {msg.text}")

    def open(self, path: str) -> None:
        response = self.page.goto(path)
        assert response is not None and response.ok, f"{path}: {response and response.status}"
        assert response.headers.get("content-security-policy") == settings.CONTENT_SECURITY_POLICY, path
        self.note()

    def note(self) -> None:
        """Record the page now shown (after a click) and its violations so far."""
        self.page.wait_for_load_state("load")
        try:
            self.names.add(resolve(urlsplit(self.page.url).path).view_name)
        except Resolver404:
            pass
        self.assert_clean()

    def violations(self) -> list[str]:
        return self.page.evaluate("window.__cspViolations || []")

    def assert_clean(self) -> None:
        found = self.violations()
        assert not found, f"{self.page.url}: CSP violations {found}"
        assert not self.console_errors, self.console_errors


def test_every_console_page_obeys_a_strict_policy_and_its_scripts_still_work(page, cast, live_server):
    message = make_message(cast.acme_smtp, subject="Order 42",
                           recipients=[("gone@example.net", "queued"), ("later@example.net", "deferred")])
    fail_recipient(Recipient.objects.get(message=message, address="gone@example.net"))
    RelayEvent.objects.create(account=cast.acme, smtp_user=cast.acme_smtp, kind=EventKind.AUTH_FAILED,
                              client_ip="192.0.2.7", port=587, username="nobody", reply="535 5.7.8")
    rule = AlertRule.objects.filter(account=cast.acme).first()
    assert rule is not None
    victor = Membership.objects.get(account=cast.acme, user=cast.victor)
    # A second account makes the account switcher appear.
    Membership.objects.create(account=cast.globex, user=cast.alice, role=Role.VIEWER)
    for_dana = invitations.invite(cast.acme, "dana@example.test", Role.VIEWER)
    user_pk = cast.acme_smtp.pk
    sending_domain = SendingDomain.objects.get(account=cast.acme)
    # An address waiting for its confirmation, and the public page of its link.
    AuthorizedEmail.objects.create(
        smtp_user=cast.acme_smtp, email="me@gmail.test", confirm_token_digest=token_digest("csp"),
        confirm_expires=timezone.now() + timedelta(hours=1))
    visits = Visits(page)

    visits.open("/login/")
    log_in(page, "alice@acme.test", PASSWORD)
    visits.note()
    for path in [
        "/", "/users/", "/users/new/", f"/users/{user_pk}/", f"/users/{user_pk}/edit/",
        f"/users/{user_pk}/delete/", f"/users/{user_pk}/troubleshoot/",
        f"/users/{user_pk}/statistics/", "/?period=30d", "/members/",
        f"/members/{victor.pk}/remove/", "/audit/", "/messages/", "/messages/?status=failed",
        "/messages/bulk/?action=retry&status=failed", f"/messages/{message.pk}/", "/events/",
        "/alerts/", "/alerts/new/", f"/alerts/{rule.pk}/", f"/alerts/{rule.pk}/edit/",
        f"/alerts/{rule.pk}/delete/", "/alerts/log/", "/subject-tool/", "/password/",
        "/api-keys/", "/suppressions/", f"/users/{user_pk}/delivery-reports/",
        "/domains/", f"/domains/{sending_domain.pk}/", "/confirm-address/csp/",
    ]:
        visits.open(path)

    # A confirmation set on a form: dismissing it sends nothing, accepting it acts.
    visits.open(f"/messages/{message.pk}/")
    page.once("dialog", lambda d: d.dismiss())
    page.click("button:has-text('Cancel (whole message)')")
    visits.note()
    assert Recipient.objects.get(address="later@example.net").status == "deferred"
    page.once("dialog", lambda d: d.accept())
    page.click("button:has-text('Cancel (whole message)')")
    page.wait_for_selector(".flash")
    visits.note()
    assert Recipient.objects.get(address="later@example.net").status == "cancelled"

    # A confirmation set on a submit button (Disable): dismissed, the user stays active.
    visits.open(f"/users/{user_pk}/")
    prompts: list[str] = []
    page.once("dialog", lambda d: (prompts.append(d.message), d.dismiss()))
    page.click("button:has-text('Disable')")
    visits.note()
    assert prompts == [f"Disable {cast.acme_smtp}? The relay will refuse its logins."]
    cast.acme_smtp.refresh_from_db()
    assert cast.acme_smtp.active

    # Reveal (through the password confirmation page), then the copy button.
    page.click("#reveal-password")
    page.wait_for_url("**/confirm-password/**")
    visits.note()
    page.fill("#id_password", PASSWORD)
    page.click("button:has-text('Confirm')")
    page.wait_for_selector("#cred-password")
    visits.note()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.bring_to_front()  # the clipboard API wants a focused document
    page.click("button[data-copy='#cred-password']")
    # A selector, not wait_for_function: its polling evaluates strings, which this CSP forbids.
    page.wait_for_selector("button[data-copy='#cred-password']:text-is('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == cast.acme_smtp.get_password()
    visits.assert_clean()

    # A test alert, then its notification's page.
    visits.open(f"/alerts/{rule.pk}/")
    page.click("button:has-text('Send test alert')")
    page.wait_for_selector(".flash")
    visits.note()
    notification = Notification.objects.filter(account=cast.acme).first()
    assert notification is not None
    visits.open(f"/alerts/log/{notification.pk}/")

    # The account switcher submits itself when another account is chosen.
    visits.open("/")
    with page.expect_navigation():
        page.select_option("select[name=account]", cast.globex.slug)
    visits.note()
    # The page came back from the server with Globex chosen (not just the field changed).
    assert page.locator("select[name=account] option[selected]").inner_text() == cast.globex.name

    # The invitation pages: refused for alice, usable once she has logged out.
    assert page.goto(f"/invite/{for_dana.token}/").status == 403
    visits.note()
    page.click("button:has-text('Log out and accept as dana@example.test')")
    page.wait_for_selector("text=Set password and join")
    visits.note()
    assert page.goto("/invite/not-a-token/").status == 404
    visits.note()

    # A console user who belongs to no account.
    User.objects.create_user("nobody@example.test", "nobody@example.test", PASSWORD)
    log_in(page, "nobody@example.test", PASSWORD)
    page.wait_for_url("**/no-account/")
    visits.note()

    # Every console page was seen.
    routes, _ = console_routes()
    pages = {r.name for r in routes} - NOT_PAGES
    assert pages - visits.names == set()

    # And the policy is really enforced: an injected inline script is blocked and reported.
    page.evaluate("""() => { const s = document.createElement("script");
        s.textContent = "window.__ran = true"; document.body.appendChild(s); }""")
    wait_until(page, "window.__cspViolations.length > 0")
    assert page.evaluate("window.__ran === undefined")
    assert "script-src" in page.evaluate("window.__cspViolations[0]")


def test_the_database_down_page_is_styled_and_obeys_the_policy(browser, tmp_path):
    from tests.test_database_unavailable import DOWN_TEXT, UNREACHABLE, console_on

    with console_on(UNREACHABLE["sqlite"](tmp_path), tmp_path) as console:
        context = browser.new_context(base_url=f"http://127.0.0.1:{console.port}")
        context.add_cookies([{"name": "sessionid", "value": "abcdefghijklmnopqrstuvwxyz012345",
                              "url": f"http://127.0.0.1:{console.port}/"}])
        page = context.new_page()
        visits = Visits(page)
        response = page.goto("/users/")
        assert response is not None and response.status == 503
        visits.assert_clean()
        assert DOWN_TEXT in page.inner_text("h1")
        # The style sheet was loaded (it needs no database): the card has its border.
        radius = page.evaluate(
            "getComputedStyle(document.querySelector('#database-unavailable')).borderTopLeftRadius")
        assert radius == "8px"
        context.close()
