"""The relay events page: failed logins, rejected senders, limits."""

from __future__ import annotations

from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from accounts.models import SmtpUser
from relay.models import EventKind, RelayEvent
from tests.conftest import login

EVENTS = reverse("relay:events")


def make_event(account, smtp_user=None, *, kind=EventKind.AUTH_FAILED, ago=0, **fields) -> RelayEvent:
    seen = timezone.now() - timedelta(minutes=ago)
    values = {"client_ip": "192.0.2.10", "port": 587, "username": "u-typed",
              "reason": "wrong password", "reply": "535 5.7.8 Authentication credentials invalid"}
    values.update(fields)
    return RelayEvent.objects.create(account=account, smtp_user=smtp_user, kind=kind,
                                     created=seen, last_seen=seen, **values)


def test_it_lists_the_accounts_events_newest_first_with_their_details(alice_client, cast):
    make_event(cast.acme, cast.acme_smtp, ago=30, reason="older reason")
    make_event(cast.acme, cast.acme_smtp, kind=EventKind.SENDER_REJECTED, ago=1, count=7,
               client_ip="198.51.100.7", port=2525, username=cast.acme_smtp.username,
               address="boss@evil-acme.test", reason="domain evil-acme.test not authorized",
               reply="550 5.7.1 Sender <boss@evil-acme.test> is not authorized")
    make_event(cast.globex, cast.globex_smtp, reason="globex reason")
    make_event(None, None, reason="unknown user reason", username="nobody")
    html = alice_client.get(EVENTS).content.decode()
    assert html.index("domain evil-acme.test not authorized") < html.index("older reason")
    for part in ("Envelope sender not authorized", "<td>7</td>",
                 '<td class="mono client">198.51.100.7</td>', '<td class="mono port">2525</td>',
                 cast.acme_smtp.username, "boss@evil-acme.test",
                 "550 5.7.1 Sender &lt;boss@evil-acme.test&gt; is not authorized"):
        assert part in html
    assert "globex reason" not in html
    assert "unknown user reason" not in html


def test_a_folded_event_shows_when_it_was_first_seen(alice_client, cast):
    event = make_event(cast.acme, ago=1, count=40)
    event.created = timezone.now() - timedelta(hours=2)
    event.save()
    html = alice_client.get(EVENTS).content.decode()
    assert "first " + timezone.localtime(event.created).strftime("%Y-%m-%d %H:%M") in html


def test_it_escapes_what_clients_typed(alice_client, cast):
    make_event(cast.acme, username="<script>alert(1)</script>", address="<img src=x>")
    html = alice_client.get(EVENTS).content.decode()
    assert "<script>alert(1)</script>" not in html and "<img src=x>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_it_filters_by_smtp_user_and_kind(alice_client, cast):
    other = SmtpUser.objects.create(account=cast.acme, name="Other", username="other1")
    make_event(cast.acme, cast.acme_smtp, kind=EventKind.AUTH_FAILED, reason="shop login")
    make_event(cast.acme, cast.acme_smtp, kind=EventKind.RATE_LIMITED, reason="shop limit")
    make_event(cast.acme, other, kind=EventKind.RATE_LIMITED, reason="other limit")

    def shown(params):
        html = alice_client.get(EVENTS, params).content.decode()
        return {r for r in ("shop login", "shop limit", "other limit") if r in html}

    assert shown({"user": cast.acme_smtp.pk}) == {"shop login", "shop limit"}
    assert shown({"kind": "rate_limited"}) == {"shop limit", "other limit"}
    assert shown({"user": other.pk, "kind": "rate_limited"}) == {"other limit"}
    assert shown({"kind": "auth_failed", "user": other.pk}) == set()


def test_another_accounts_user_is_not_a_filter(alice_client, cast):
    make_event(cast.globex, cast.globex_smtp, reason="globex reason")
    html = alice_client.get(EVENTS, {"user": cast.globex_smtp.pk}).content.decode()
    assert "globex reason" not in html
    assert "not valid" in html


def test_it_pages_by_older_and_newer_links(alice_client, cast):
    now = timezone.now()
    RelayEvent.objects.bulk_create([
        RelayEvent(account=cast.acme, kind=EventKind.AUTH_FAILED, reason=f"r{i:03d}",
                   created=now, last_seen=now - timedelta(seconds=i))
        for i in range(70)
    ])
    first = alice_client.get(EVENTS)
    assert len(first.context["events"]) == 50
    older = alice_client.get(EVENTS, {"before": first.context["page"].older})
    reasons = [e.reason for e in older.context["events"]]
    assert reasons == [f"r{i:03d}" for i in range(50, 70)]
    newer = alice_client.get(EVENTS, {"after": older.context["page"].newer})
    assert [e.reason for e in newer.context["events"]] == [f"r{i:03d}" for i in range(50)]


def test_pagination_links_keep_the_filters(alice_client, cast):
    now = timezone.now()
    RelayEvent.objects.bulk_create([
        RelayEvent(account=cast.acme, smtp_user=cast.acme_smtp, kind=EventKind.RATE_LIMITED,
                   created=now, last_seen=now - timedelta(seconds=i))
        for i in range(55)
    ])
    html = alice_client.get(EVENTS, {"user": cast.acme_smtp.pk, "kind": "rate_limited",
                                     "before": ""}).content.decode()
    assert f"?user={cast.acme_smtp.pk}&amp;kind=rate_limited&amp;before=" in html


def test_a_viewer_can_read_events(client, cast):
    login(client, cast.victor)
    make_event(cast.acme, reason="visible to viewers")
    assert "visible to viewers" in client.get(EVENTS).content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client, cast):
    response = client.get(EVENTS)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_client_column_never_shows_the_relays_own_port(alice_client, cast):
    # 2525 is the relay's port the client connected to, not the client's: a column of its own.
    make_event(cast.acme, cast.acme_smtp, client_ip="203.0.113.5", port=2525)
    html = alice_client.get(EVENTS).content.decode()
    assert "203.0.113.5:2525" not in html
    assert "<th>Relay port</th>" in html
