"""In a real browser: the dashboard's charts and their tables, and a number that opens
the messages log filtered to what it counts."""

from __future__ import annotations

import pytest
from django.urls import reverse

from relay.models import EventKind
from tests.alerts.conftest import failed_message, relay_event
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.fake_upstream import queue_message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_dashboard_charts_link_to_the_log_filtered_to_what_they_count(page, cast):
    queue_message(cast.acme_smtp, ["ok@example.net"], subject="Still queued")
    failed_message(cast.acme_smtp, ["ghost@other.test"], subject="Bounced order")
    failed_message(cast.acme_smtp, ["nobody@other.test"], subject="Bounced invoice")
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

    log_in(page, "alice@acme.test", PASSWORD)
    page.goto("/")
    chart = page.locator("#chart-recipients")
    assert chart.locator("svg.chart-svg rect.series-failed").count() == 1
    # The bar is drawn (the style sheet coloured it) and the table says the same.
    box = chart.locator("svg.chart-svg rect.series-failed").bounding_box()
    assert box and box["height"] > 10
    fill = chart.locator("svg.chart-svg rect.series-failed").evaluate(
        "r => getComputedStyle(r).fill")
    assert fill == "rgb(192, 57, 43)"
    table = chart.locator("table.chart-table")
    assert table.is_visible()
    assert "failed" in table.locator("thead").inner_text().lower()
    page.screenshot(path="/tmp/dashboard-stats.png", full_page=True)
    assert page.locator("#count-failed").inner_text() == "2"
    assert page.locator("#count-accepted").inner_text() == "3"

    page.locator("#count-failed").click()
    page.wait_for_url("**/messages/**")
    assert "event=failed" in page.url
    subjects = page.locator("table.messages-log a.subject").all_inner_texts()
    assert sorted(subjects) == ["Bounced invoice", "Bounced order"]
    assert page.locator("#id_event").input_value() == "failed"

    page.goto("/?period=30d")
    assert page.locator(".period-selector a.current").inner_text() == "Last 30 days"
    page.locator("#top-domains-failures a", has_text="2").click()
    page.wait_for_url("**/messages/**")
    assert page.locator("#id_domain").input_value() == "other.test"
    assert len(page.locator("table.messages-log a.subject").all_inner_texts()) == 2
    assert not [e for e in errors if "Content Security Policy" in e], errors


def test_a_users_statistics_open_from_its_page_and_link_to_its_refusals(page, cast):
    queue_message(cast.acme_smtp, ["ok@example.net"], subject="Sent", client_ip="192.0.2.7")
    relay_event(cast.acme_smtp, EventKind.SENDER_REJECTED, count=3, reason="not authorized")
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto(cast.acme_smtp.get_absolute_url())
    page.click("#statistics-link")
    page.wait_for_url("**/statistics/**")
    assert page.locator("h1").inner_text() == "Statistics of Acme web shop"
    assert page.locator("#chart-messages svg.chart-svg rect.series-accepted").count() == 1
    assert page.locator("#chart-messages table.chart-table").is_visible()
    assert "192.0.2.7" in page.locator("#clients").inner_text()
    page.click("#reason-sender_rejected")
    page.wait_for_url("**/events/**")
    assert page.locator("table.events tbody tr").count() == 1
    assert "not authorized" in page.locator("table.events").inner_text()


def test_the_charts_fit_a_phone_screen_without_sideways_scrolling(page, cast):
    for i in range(30):
        queue_message(cast.acme_smtp, [f"user{i}@very-long-recipient-domain-name-{i}.example"])
    log_in(page, "alice@acme.test", PASSWORD)
    page.set_viewport_size({"width": 390, "height": 844})
    for url in ("/?period=30d", reverse("relay:user_stats", args=[cast.acme_smtp.pk])):
        page.goto(url)
        assert page.locator("#chart-messages svg.chart-svg").is_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (url, width)
