"""The dashboard: relay status and ports, queue, last 24 hours, latest problems."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import SmtpUser
from relay.console.dashboard import dashboard_context, node_ports
from relay.console.stats import statistics_context
from relay.models import EventKind, Recipient, RelayEvent, RelayNode
from tests.relay.console.test_messages import fail_recipient, make_message
from tests.senders import authorize_email

DASHBOARD = reverse("dashboard")
BANNER = "No relay has been alive for over a minute"


def listeners(ports, tls="starttls", host="0.0.0.0"):
    return [{"host": host, "port": p, "tls": tls} for p in ports]


def test_it_shows_the_live_relays_ports_grouped_by_tls(alice_client, cast):
    RelayNode.objects.create(
        node_id="mx1:100", hostname="mx1",
        listeners=listeners([25, 587, *range(1025, 1031)]) + listeners([465], "implicit"),
    )
    html = alice_client.get(DASHBOARD).content.decode()
    assert BANNER not in html
    assert "mx1:100" in html
    assert 'STARTTLS: <span class="mono">25, 587, 1025-1030</span>' in html
    assert 'implicit TLS: <span class="mono">465</span>' in html


def test_node_ports_merges_hosts_and_orders_plain_before_implicit():
    ports = node_ports(listeners([2525], "none") + listeners([465], "implicit")
                       + listeners([2525, 2526], "none", host="::"))
    assert ports == [("no TLS", "2525-2526"), ("implicit TLS", "465")]


def test_it_warns_in_red_when_no_relay_is_alive(alice_client, cast):
    stale = timezone.now() - timedelta(minutes=5)
    RelayNode.objects.create(node_id="mx1:1", hostname="mx1", listeners=listeners([25]),
                             heartbeat=stale)
    RelayNode.objects.create(node_id="mx1:2", hostname="mx1", listeners=listeners([25]),
                             stopped=timezone.now())
    html = alice_client.get(DASHBOARD).content.decode()
    assert f'<div class="alert-box bad relay-down"><b>{BANNER}.</b>' in html
    # The node that stopped beating is listed as down; the one stopped on purpose is not.
    assert "Last heartbeat" in html
    assert '<tr class="node node-down" data-node="mx1:1">' in html and "mx1:2" not in html


def test_it_lists_every_live_node_with_version_uptime_and_last_minute_and_the_lost_ones_as_down(
    alice_client, cast,
):
    now = timezone.now()
    RelayNode.objects.create(node_id="relay-a", hostname="mx1", listeners=listeners([587]),
                             version="0.1.0", started=now - timedelta(hours=3),
                             accepted_last_minute=1234)
    RelayNode.objects.create(node_id="relay-b", hostname="mx2", listeners=listeners([2525]),
                             version="0.1.0", accepted_last_minute=7)
    RelayNode.objects.create(node_id="relay-c", hostname="mx3", listeners=listeners([587]),
                             heartbeat=now - timedelta(minutes=3))
    RelayNode.objects.create(node_id="relay-old", hostname="mx3", listeners=listeners([587]),
                             heartbeat=now - timedelta(days=3))
    html = alice_client.get(DASHBOARD).content.decode()
    assert BANNER not in html
    rows = html.split('<tr class="node')[1:]
    by_name = {row.split('data-node="')[1].split('"')[0]: row for row in rows}
    assert list(by_name) == ["relay-a", "relay-b", "relay-c"]
    assert "<td>up</td>" in by_name["relay-a"] and "3\xa0hours" in by_name["relay-a"]
    assert '<td class="num">1234</td>' in by_name["relay-a"]
    assert '<td class="mono">0.1.0</td>' in by_name["relay-a"]
    assert '<td class="num">7</td>' in by_name["relay-b"]
    assert '<b class="text-bad">down</b>' in by_name["relay-c"]
    assert "down" not in by_name["relay-a"] + by_name["relay-b"]


def test_it_says_when_no_relay_ever_reported(alice_client, cast):
    html = alice_client.get(DASHBOARD).content.decode()
    assert BANNER in html and "No relay has ever reported" in html


def test_it_counts_the_queue_and_the_last_24_hours_for_this_account_only(cast):
    now = timezone.now()
    make_message(cast.acme_smtp, created=now - timedelta(hours=3), recipients=[
        ("q@example.net", "queued"), ("d@example.net", "deferred"),
        ("ok1@example.net", "delivered"), ("ok2@example.net", "delivered"),
        ("bad@example.net", "failed"), ("stop@example.net", "cancelled"),
    ])
    # Accepted and finished two days ago: not in the 24 hours' statistics, but its
    # queued recipient is the oldest in the queue.
    make_message(cast.acme_smtp, created=now - timedelta(days=2), recipients=[
        ("old@example.net", "delivered"), ("stuck@example.net", "queued"),
    ])
    make_message(cast.globex_smtp, recipients=[("g@example.net", "failed"),
                                               ("g2@example.net", "queued")])
    RelayEvent.objects.create(account=cast.acme, kind=EventKind.AUTH_FAILED, count=5)
    RelayEvent.objects.create(account=cast.acme, kind=EventKind.SENDER_REJECTED, count=2)
    RelayEvent.objects.create(account=cast.acme, kind=EventKind.AUTH_FAILED, count=9,
                              last_seen=now - timedelta(days=3))
    RelayEvent.objects.create(account=cast.globex, kind=EventKind.AUTH_FAILED, count=100)

    counts = dashboard_context(cast.acme)["counts"]
    assert counts["queue"] == 3
    totals = statistics_context(cast.acme, "24h")["totals"]
    found = {n.id: n.value for group in ("messages", "recipients", "relay") for n in totals[group]}
    assert found == {"count-accepted": 1, "count-recipients": 6, "count-delivered": 2,
                     "count-deferred": 0, "count-failed": 1, "count-rejected": 7}
    assert timedelta(days=2) <= counts["oldest_age"] < timedelta(days=2, minutes=5)


def test_the_page_shows_the_counts(alice_client, cast):
    make_message(cast.acme_smtp, recipients=[("q@example.net", "queued")],
                 created=timezone.now() - timedelta(hours=5))
    html = alice_client.get(DASHBOARD).content.decode()
    assert '<b id="count-accepted">1</b>' in html
    assert '<b id="queue-size">1</b>' in html
    assert '<b id="queue-oldest">5' in html and "hours" in html


def test_latest_problems_link_to_the_message_and_the_events(alice_client, cast):
    message = make_message(cast.acme_smtp, subject="=?utf-8?Q?I love you =E2=99=A5?=",
                           recipients=[("nobody@example.net", "queued")])
    fail_recipient(Recipient.objects.get(message=message), text="User <nobody> unknown")
    event = RelayEvent.objects.create(account=cast.acme, smtp_user=cast.acme_smtp,
                                      kind=EventKind.FROM_REJECTED, username="u1",
                                      reason="From <x@evil.test> not authorized")
    make_message(cast.globex_smtp, subject="globex trouble",
                 recipients=[("g@example.net", "failed")])
    html = alice_client.get(DASHBOARD).content.decode()
    assert reverse("relay:message_detail", args=[message.pk]) in html
    assert "I love you ♥" in html
    assert "User &lt;nobody&gt; unknown" in html
    assert "From &lt;x@evil.test&gt; not authorized" in html
    assert f"?kind=from_rejected&amp;user={cast.acme_smtp.pk}#event-{event.pk}" in html
    assert "globex trouble" not in html


def test_it_lists_smtp_users_without_authorized_senders(alice_client, cast):
    SmtpUser.objects.create(account=cast.acme, name="Forgotten app", username="forgot1")
    with_email = SmtpUser.objects.create(account=cast.acme, name="Email only", username="eonly1")
    authorize_email(with_email, "ops@acme.test")
    SmtpUser.objects.create(account=cast.globex, name="Globex bare", username="gbare1")
    html = alice_client.get(DASHBOARD).content.decode()
    warning = html[html.index('class="alert-box warn no-senders"'):]
    warning = warning[: warning.index("</div>")]
    assert "Forgotten app" in warning
    assert "Email only" not in warning and "Acme web shop" not in warning
    assert "Globex bare" not in html


def test_no_warning_when_every_user_has_senders(alice_client, cast):
    assert "no-senders" not in alice_client.get(DASHBOARD).content.decode()


def test_the_dashboard_takes_a_handful_of_queries_whatever_the_volume(alice_client, cast):
    def add_traffic():
        for _ in range(20):
            message = make_message(cast.acme_smtp, recipients=[("a@example.net", "queued")])
            fail_recipient(message.recipients.get())
            RelayEvent.objects.create(account=cast.acme, kind=EventKind.AUTH_FAILED)

    def count() -> int:
        with CaptureQueriesContext(connection) as queries:
            assert alice_client.get(DASHBOARD).status_code == 200
        return len(queries)

    add_traffic()
    first = count()
    add_traffic()
    # 4 for session, user, membership and the account menu; 6 for the relay, queue and
    # latest problems; 15 for the statistics (rollups, the live hour, the top lists).
    assert first == count() <= 25
