"""In a real browser: an admin creates an API key (shown once, copyable), follows the
console's link to the API reference, and the page draws every endpoint of the OpenAPI
document from our own script, under the console's strict Content-Security-Policy."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from accounts.api.keys import digest_key
from accounts.models import ApiKey
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.e2e.test_content_security_policy import Visits

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_an_admin_creates_a_key_and_reads_the_api_reference(page, cast):
    visits = Visits(page)
    log_in(page, "bob@acme.test", PASSWORD)
    visits.open("/api-keys/")
    page.fill("#id_name", "Deploy pipeline")
    page.select_option("#id_role", "admin")
    page.click("button:has-text('Create key')")
    page.wait_for_selector("#new-key")
    visits.note()
    shown = page.input_value("#api-key")
    key = ApiKey.objects.get(name="Deploy pipeline")
    assert key.digest == digest_key(shown)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.bring_to_front()
    page.click("button[data-copy='#api-key']")
    # A locator wait, not wait_for_function: its polling evaluates strings, which the CSP forbids.
    expect(page.locator("button[data-copy='#api-key']")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == shown
    page.reload()
    assert page.locator("#new-key").count() == 0  # shown once

    page.click("nav.mainnav summary:has-text('More')")
    page.click("nav.mainnav a:has-text('API docs')")
    page.wait_for_selector("#api-reference[data-loaded=true]")
    visits.note()
    document = page.request.get("/api/v1/openapi.json").json()
    expected = {f"{m.upper()} {p}" for p, ops in document["paths"].items() for m in ops}
    drawn = set(page.locator("[data-endpoint]").evaluate_all("els => els.map(e => e.dataset.endpoint)"))
    assert drawn == expected
    assert "Authorization: Bearer" in page.inner_text("main")
    visits.assert_clean()


def test_the_api_reference_page_needs_no_login_and_obeys_the_policy(page, cast):
    visits = Visits(page)
    visits.open("/api/v1/docs")
    page.wait_for_selector("#api-reference[data-loaded=true]")
    assert page.locator("[data-endpoint='GET /api/v1/messages']").count() == 1
    visits.assert_clean()
