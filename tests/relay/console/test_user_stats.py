"""One SMTP+ user's statistics page: that user's numbers only, each linking to what it
counts; its logins with and without TLS, its clients, and why the relay refused it."""

from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from accounts.actions.smtp_users import create_smtp_user
from relay.models import ConnectionStat, EventKind, RelayEvent, RelayNode
from relay.rollup import floor_hour
from tests.alerts.conftest import failed_message, relay_event
from tests.conftest import login
from tests.fake_upstream import queue_message
from tests.relay.console.test_statistics import listed, numbers


def stats_url(user) -> str:
    return reverse("relay:user_stats", args=[user.pk])


def test_the_users_page_links_to_its_statistics(alice_client, cast):
    page = alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert f'id="statistics-link" href="{stats_url(cast.acme_smtp)}"' in page


def test_it_counts_this_user_only_and_each_number_lists_what_it_counts(alice_client, cast):
    other, _ = create_smtp_user(cast.acme, name="Other app")
    queue_message(cast.acme_smtp, ["a@example.net"])
    failed_message(cast.acme_smtp, ["b@example.net"])
    queue_message(other, ["c@example.net"])
    failed_message(other, ["d@example.net"])
    relay_event(cast.acme_smtp, EventKind.SENDER_REJECTED, count=2)
    relay_event(other, EventKind.AUTH_FAILED, count=5)
    page = alice_client.get(stats_url(cast.acme_smtp)).content.decode()
    found = numbers(page)
    assert {k: v for k, (v, _) in found.items()} == {
        "count-accepted": 2, "count-recipients": 2, "count-delivered": 0, "count-deferred": 0,
        "count-failed": 1, "count-rejected": 2}
    for key, (value, url) in found.items():
        assert f"user={cast.acme_smtp.pk}" in url
        assert listed(alice_client, url) == value, key
    assert "Other app" not in page


def test_another_accounts_user_is_not_found(client, cast):
    login(client, cast.charlie)
    assert client.get(stats_url(cast.acme_smtp)).status_code == 404


def test_top_rejection_reasons_are_ranked_with_their_precise_reasons(alice_client, cast):
    relay_event(cast.acme_smtp, EventKind.SENDER_REJECTED, count=4, reason="not in the list")
    relay_event(cast.acme_smtp, EventKind.SENDER_REJECTED, count=1, reason="subdomain not allowed",
                address="x@sub.acme.test")
    relay_event(cast.acme_smtp, EventKind.RATE_LIMITED, count=2, reason="100 per hour")
    relay_event(cast.acme_smtp, EventKind.AUTH_FAILED, count=9,
                last_seen=timezone.now() - timedelta(days=3))  # not in the last 24 hours
    relay_event(cast.globex_smtp, EventKind.RATE_LIMITED, count=50)
    page = html_lib.unescape(alice_client.get(stats_url(cast.acme_smtp)).content.decode())
    table = page[page.index('id="rejection-reasons"'):]
    table = table[:table.index("</table>")]
    assert table.index("Envelope sender not authorized") < table.index("Hourly limit reached")
    assert "Failed login" not in table
    link = re.search(r'<a href="([^"]+)" id="reason-sender_rejected">5</a>', table)[1]
    assert "kind=sender_rejected" in link
    assert listed(alice_client, link) == 5
    assert "not in the list (4)" in re.sub(r"\s*<span class=\"muted\">\((\d+)\)</span>", r" (\1)", table)


def test_logins_show_the_tls_share_and_what_the_port_offers(alice_client, cast):
    RelayNode.objects.create(node_id="mx1:1", hostname="mx1", listeners=[
        {"host": "0.0.0.0", "port": 587, "tls": "starttls"},
        {"host": "0.0.0.0", "port": 465, "tls": "implicit"}])
    hour = floor_hour(timezone.now())
    ConnectionStat.objects.create(hour=hour, port=587, smtp_user=cast.acme_smtp, connections=5,
                                  logins=5, tls_logins=3)
    ConnectionStat.objects.create(hour=hour, port=465, smtp_user=cast.acme_smtp, connections=1,
                                  logins=1, tls_logins=1)
    ConnectionStat.objects.create(hour=hour, port=587, smtp_user=cast.globex_smtp, logins=7)
    page = alice_client.get(stats_url(cast.acme_smtp)).content.decode()
    table = page[page.index('id="logins"'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r"<tr><td>.*?</tr>", table, re.S)
    cells = [re.findall(r"<td[^>]*>([^<]*)</td>", r) for r in rows]
    assert [c[1:6] for c in cells] == [["465", "implicit TLS", "1", "1", "0"],
                                      ["587", "STARTTLS", "5", "3", "2"]]


def test_clients_are_the_addresses_its_messages_came_from(alice_client, cast):
    for _ in range(3):
        queue_message(cast.acme_smtp, ["a@example.net"], client_ip="192.0.2.7", port=587,
                      client_helo="app1.acme.test")
    queue_message(cast.acme_smtp, ["a@example.net"], client_ip="2001:db8::9", port=465,
                  client_helo="app2.acme.test")
    queue_message(cast.globex_smtp, ["a@example.net"], client_ip="198.51.100.1", port=25)
    page = alice_client.get(stats_url(cast.acme_smtp)).content.decode()
    table = page[page.index('id="clients"'):]
    table = table[:table.index("</table>")]
    assert table.index("192.0.2.7") < table.index("2001:db8::9")
    assert "app1.acme.test</td><td>3</td>" in table
    assert "198.51.100.1" not in table


def test_an_unfiltered_user_page_has_no_events_of_other_users(alice_client, cast):
    RelayEvent.objects.create(account=cast.acme, kind=EventKind.AUTH_FAILED, count=3)
    page = alice_client.get(stats_url(cast.acme_smtp)).content.decode()
    assert numbers(page)["count-rejected"][0] == 0
