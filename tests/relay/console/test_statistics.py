"""The dashboard's statistics: every number equals what its link lists, whether the hours
were folded or counted live; another account's traffic never shows; charts have tables."""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from relay import rollup
from relay.delivery.worker import deliver_due
from relay.models import EventKind, RelayEvent
from tests.alerts.conftest import relay_event
from tests.conftest import login
from tests.fake_upstream import queue_message

# The delivery worker runs its database work on threads of its own.
pytestmark = pytest.mark.django_db(transaction=True)

DASHBOARD = reverse("dashboard")
NUMBER = re.compile(r'<a href="([^"]+)"><b id="(count-[a-z]+)"[^>]*>(\d+)</b></a>')


def numbers(page: str) -> dict[str, tuple[int, str]]:
    """{"count-accepted": (value, link), …} of the page's totals."""
    return {key: (int(value), html_lib.unescape(href)) for href, key, value in NUMBER.findall(page)}


def listed(client, url: str) -> int:
    """What the linked page lists: messages in the log, or the relay events' counts."""
    page = client.get(url).content.decode()
    if url.startswith(reverse("relay:events")):
        ids = [int(i) for i in re.findall(r'<tr id="event-(\d+)"', page)]
        return sum(RelayEvent.objects.filter(pk__in=ids).values_list("count", flat=True))
    return page.count('class="subject"')


@pytest.fixture
def traffic(cast, upstream):
    """Single-recipient messages delivered for real: 4 delivered (one 3 hours ago), 2
    refused, 1 deferred; relay events; and Globex traffic that must never show. Each
    refusal makes SMTP+ send a delivery report to shop@acme.test: 2 more messages,
    delivered (the log lists them with the rest: "All messages")."""
    upstream.replies["bad@example.net"] = "550 5.1.1 No such user"
    upstream.replies["bad@other.test"] = "550 5.1.1 No such user"
    upstream.replies["later@other.test"] = "451 4.3.0 Busy"
    queue_message(cast.acme_smtp, ["early@example.net"], created=timezone.now() - timedelta(hours=3))
    for address in ("a@example.net", "b@example.net", "c@other.test", "bad@example.net",
                    "bad@other.test", "later@other.test"):
        queue_message(cast.acme_smtp, [address])
    for i in range(9):
        queue_message(cast.globex_smtp, [f"g{i}@globex-only.test"], sender="crm@globex.test")
    deliver_due(upstream=upstream.url())
    relay_event(cast.acme_smtp, EventKind.SENDER_REJECTED, count=3)
    relay_event(cast.acme_smtp, EventKind.AUTH_FAILED)
    relay_event(cast.globex_smtp, EventKind.AUTH_FAILED, count=40)
    return cast


@pytest.mark.parametrize("folded", [False, True], ids=["live", "folded"])
def test_every_number_equals_what_its_link_lists(client, traffic, folded):
    if folded:  # the earlier hour comes from the rollups, the current one stays live
        rollup.fold_due()
        assert rollup.folded_until() is not None
    login(client, traffic.alice)
    found = numbers(client.get(DASHBOARD).content.decode())
    assert {k: v for k, (v, _) in found.items()} == {
        "count-accepted": 9, "count-recipients": 9, "count-delivered": 6, "count-deferred": 1,
        "count-failed": 2, "count-rejected": 4,
    }
    for key, (value, url) in found.items():
        assert listed(client, url) == value, (key, url)


def test_the_folded_and_live_dashboards_show_the_same_page(client, traffic):
    login(client, traffic.alice)
    live = client.get(DASHBOARD).content.decode()
    rollup.fold_due(timezone.now() + timedelta(hours=2))  # fold the current hour too
    folded = client.get(DASHBOARD).content.decode()
    strip = re.compile(r'<p class="help muted">.*?</p>', re.S)
    assert numbers(live) == numbers(folded)
    section = re.compile(r'<section class="statistics".*?</section>', re.S)
    assert strip.sub("", section.search(live)[0]) == strip.sub("", section.search(folded)[0])


def test_another_accounts_traffic_never_shows(client, traffic):
    rollup.fold_due(timezone.now() + timedelta(hours=2))
    login(client, traffic.alice)
    page = client.get(DASHBOARD).content.decode()
    assert "globex-only.test" not in page and "Globex CRM" not in page
    assert numbers(page)["count-rejected"][0] == 4
    login(client, traffic.charlie)
    page = client.get(DASHBOARD).content.decode()
    assert {k: v for k, (v, _) in numbers(page).items()}["count-accepted"] == 9
    assert "other.test" not in page and "Acme web shop" not in page


def test_the_top_lists_rank_users_and_domains_with_links_to_the_log(client, traffic):
    login(client, traffic.alice)
    page = html_lib.unescape(client.get(DASHBOARD).content.decode())
    volume = page[page.index('id="top-domains-volume"'):]
    volume = volume[:volume.index("</table>")]
    assert volume.index("example.net") < volume.index("other.test")  # 4 recipients, then 3
    failures = page[page.index('id="top-domains-failures"'):]
    failures = failures[:failures.index("</table>")]
    link = re.search(r'<a href="([^"]+)">1</a>', failures[failures.index("other.test"):])[1]
    assert "domain=other.test" in link and "event=failed" in link
    assert listed(client, link) == 1
    users = page[page.index('id="top-users-volume"'):]
    assert reverse("relay:user_stats", args=[traffic.acme_smtp.pk]) in users[:users.index("</table>")]


def test_each_chart_has_a_table_whose_cells_add_up_to_the_totals(client, traffic):
    login(client, traffic.alice)
    page = client.get(DASHBOARD).content.decode()
    assert page.count("<svg class=\"chart-svg\"") == 3
    table = page[page.index('id="chart-recipients-table"'):]
    table = table[:table.index("</table>")]
    assert "<th scope=\"col\">Delivered</th>" in table
    rows = re.findall(r"<tr><th scope=\"row\">.*?</tr>", table, re.S)
    assert len(rows) == 24
    cells = [int(v) for row in rows for v in re.findall(r"<td>(?:<a [^>]*>)?(\d+)", row)]
    assert sum(cells) == 6 + 1 + 2
    assert 'style="' not in page  # the CSP allows no inline style


def test_the_period_selector_widens_the_window(client, cast):
    queue_message(cast.acme_smtp, ["old@example.net"], created=timezone.now() - timedelta(days=3))
    queue_message(cast.acme_smtp, ["new@example.net"])
    login(client, cast.alice)
    counts = {p: numbers(client.get(DASHBOARD, {"period": p}).content.decode())
              for p in ("24h", "7d", "30d")}
    assert [counts[p]["count-accepted"][0] for p in ("24h", "7d", "30d")] == [1, 2, 2]
    assert listed(client, counts["7d"]["count-accepted"][1]) == 2
    page = client.get(DASHBOARD, {"period": "7d"}).content.decode()
    assert '<a href="?period=7d" aria-current="page"' in page


def test_rates_are_shares_of_the_recipients_that_finished(client, traffic):
    login(client, traffic.alice)
    page = client.get(DASHBOARD).content.decode()
    assert '<b id="rate-delivery-rate">75.0 %</b>' in page  # 6 of 8
    assert '<b id="rate-bounce-rate">25.0 %</b>' in page


def test_the_30_day_top_domains_add_whole_days_and_the_hours_around_them(client, cast):
    now = timezone.now()
    # Spread over the 30 days: at their first hour, in whole days, and in the last hours.
    for delta, address in ((timedelta(days=29, hours=23), "first@edge.test"),
                           (timedelta(days=12), "middle@edge.test"),
                           (timedelta(days=12), "x@days.test"),
                           (timedelta(hours=2), "late@edge.test")):
        queue_message(cast.acme_smtp, [address], created=now - delta)
    login(client, cast.alice)
    live = client.get(DASHBOARD, {"period": "30d"}).content.decode()
    rollup.fold_due()
    folded = client.get(DASHBOARD, {"period": "30d"}).content.decode()
    volume = re.compile(r'id="top-domains-volume".*?</table>', re.S)
    assert volume.search(folded)[0] == volume.search(live)[0]
    assert re.search(r"edge\.test</span></td>\s*<td><a [^>]*>3</a>", volume.search(folded)[0])
