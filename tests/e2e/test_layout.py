"""In a real browser: every console page fits a phone's width, the navigation folds
behind a Menu button there and fits one line on a laptop, with the current page marked."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from accounts.models import Account, Membership, Role
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.test_tenant_isolation import console_routes, populate

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PK = 7_300_001  # every object of the populated account has this id
PHONE = {"width": 390, "height": 844}
LAPTOP = {"width": 1280, "height": 800}


@pytest.fixture
def full_account(db):
    """An account with one row of every kind, so that every detail page has something
    to show (long texts included: a 64-character subject, addresses, replies)."""
    owner = get_user_model().objects.create_user(
        pk=PK, username="olivia@layout.test", email="olivia@layout.test", password=PASSWORD)
    account = Account.objects.create(pk=PK, name="Layout Testing Incorporated", slug="layout")
    Membership.objects.create(account=account, user=owner, role=Role.OWNER)
    populate(account, owner, PK, "layout", "203.0.113.99")
    return account


def fits(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")


def test_no_console_page_scrolls_sideways_on_a_phone(page, full_account):
    page.set_viewport_size(PHONE)
    log_in(page, "olivia@layout.test", PASSWORD)
    routes, _ = console_routes()
    checked, wide = [], []
    for route in routes:
        if not route.only_int_kwargs or route.name in ("healthz", "metrics", "favicon"):
            continue
        url = route.url({name: PK for name in route.int_kwargs})
        probe = page.request.get(url, max_redirects=0)
        if probe.status != 200 or "text/html" not in (probe.headers.get("content-type") or ""):
            continue  # POST-only actions, redirects, JSON and file downloads
        page.goto(url)
        checked.append(url)
        scroll, width = fits(page)
        if scroll > width:
            wide.append(f"{url} ({route.name}): {scroll}px wide in a {width}px window")
    assert len(checked) >= 20, checked
    assert not wide, "pages that scroll sideways on a phone:\n" + "\n".join(wide)


def test_on_a_phone_the_navigation_opens_from_the_menu_button(page, full_account):
    page.set_viewport_size(PHONE)
    log_in(page, "olivia@layout.test", PASSWORD)
    messages = page.locator("nav.mainnav a", has_text="Messages")
    assert not messages.is_visible()
    toggle = page.locator("button.menu-toggle")
    assert toggle.get_attribute("aria-expanded") == "false"
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    messages.click()
    page.wait_for_url("**/messages/")
    assert fits(page)[0] <= PHONE["width"]


def test_on_a_laptop_the_navigation_is_one_line_and_marks_the_current_page(page, full_account):
    page.set_viewport_size(LAPTOP)
    log_in(page, "olivia@layout.test", PASSWORD)
    assert not page.locator("button.menu-toggle").is_visible()
    for path, current in ((f"/users/{PK}/troubleshoot/", "SMTP+ users"),
                          (f"/messages/{PK}/", "Messages"), ("/", "Dashboard")):
        page.goto(path)
        tops = page.locator("nav.mainnav > a, nav.mainnav > details > summary").evaluate_all(
            "els => els.map(e => Math.round(e.getBoundingClientRect().top))")
        assert len(tops) >= 6 and len(set(tops)) == 1, f"{path}: the navigation wraps: {tops}"
        topbar = page.locator("header.topbar").evaluate("e => e.getBoundingClientRect().height")
        assert topbar < 60, f"{path}: the bar is {topbar}px high"
        marked = page.locator("nav.mainnav [aria-current=page]")
        assert marked.count() == 1 and marked.inner_text() == current
    page.goto("/audit/")
    assert page.locator("nav.mainnav summary[aria-current]").inner_text().startswith("More")
    page.click("nav.mainnav summary")
    assert page.locator("nav.mainnav .menu-items [aria-current=page]").inner_text() == "Audit log"
