"""The messages log and relay events filters the statistics link to: a period to the
minute (since/until), what it applies to (acceptance, delivery, deferral, failure) and
the recipient domain — all scoped to the account."""

from __future__ import annotations

import re
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from relay.console.stats import moment
from relay.models import Attempt, EventKind, Recipient, RecipientStatus
from tests.alerts.conftest import failed_message, relay_event
from tests.fake_upstream import queue_message

LOG = reverse("relay:messages")
EVENTS = reverse("relay:events")


def subjects(client, **params) -> list[str]:
    return re.findall(r'class="subject">([^<]*)</a>', client.get(LOG, params).content.decode())


def test_since_and_until_select_messages_accepted_in_the_period(alice_client, cast):
    now = timezone.now()
    queue_message(cast.acme_smtp, ["a@example.net"], subject="two hours ago",
                  created=now - timedelta(hours=2))
    queue_message(cast.acme_smtp, ["a@example.net"], subject="just now")
    queue_message(cast.globex_smtp, ["a@example.net"], subject="globex", sender="x@globex.test")
    got = subjects(alice_client, since=moment(now - timedelta(hours=3)),
                   until=moment(now - timedelta(hours=1)))
    assert got == ["two hours ago"]
    assert subjects(alice_client, since=moment(now - timedelta(minutes=1))) == ["just now"]


def test_the_period_of_a_failure_is_when_the_recipient_failed(alice_client, cast):
    now = timezone.now()
    failed_message(cast.acme_smtp, ["x@example.net"], subject="failed now",
                   created=now - timedelta(days=2), finished_at=now)
    failed_message(cast.acme_smtp, ["y@example.net"], subject="failed long ago",
                   created=now - timedelta(days=2), finished_at=now - timedelta(days=2))
    window = {"since": moment(now - timedelta(hours=1)), "until": moment(now + timedelta(hours=1))}
    assert subjects(alice_client, event="failed", **window) == ["failed now"]
    assert subjects(alice_client, **window) == []  # neither was accepted in the period


def test_the_period_of_a_deferral_is_when_the_try_was_made(alice_client, cast):
    message = queue_message(cast.acme_smtp, ["slow@example.net"], subject="deferred")
    recipient = Recipient.objects.get(message=message)
    Attempt.objects.create(recipient=recipient, outcome="deferred", code=451, text="Busy")
    Recipient.objects.filter(pk=recipient.pk).update(status=RecipientStatus.DEFERRED)
    queue_message(cast.acme_smtp, ["fine@example.net"], subject="not deferred")
    now = timezone.now()
    window = {"since": moment(now - timedelta(hours=1)), "until": moment(now + timedelta(hours=1))}
    assert subjects(alice_client, event="deferred", **window) == ["deferred"]


def test_the_domain_and_the_event_apply_to_the_same_recipient(alice_client, cast):
    failed_message(cast.acme_smtp, ["x@Other.Test"], subject="failed at other.test")
    message = queue_message(cast.acme_smtp, ["ok@other.test", "bad@example.net"],
                            subject="failed elsewhere")
    Recipient.objects.filter(message=message, address="bad@example.net").update(
        status=RecipientStatus.FAILED, finished_at=timezone.now())
    assert subjects(alice_client, domain="other.test", event="failed") == ["failed at other.test"]
    assert sorted(subjects(alice_client, domain="OTHER.test.")) == [
        "failed at other.test", "failed elsewhere"]
    assert subjects(alice_client, domain="sub.other.test") == []


def test_a_bad_domain_or_period_is_an_error_and_nothing_is_guessed(alice_client, cast):
    page = alice_client.get(LOG, {"domain": "bob@example.net"}).content.decode()
    assert "Recipient domain: enter a domain name" in page
    page = alice_client.get(LOG, {"since": "2026-12-03T10:00", "until": "2026-12-03T09:00"})
    assert "The period&#x27;s start is not before its end." in page.content.decode()


def test_relay_events_filter_by_when_they_were_last_seen(alice_client, cast):
    now = timezone.now()
    old = relay_event(cast.acme_smtp, EventKind.AUTH_FAILED, last_seen=now - timedelta(hours=5))
    new = relay_event(cast.acme_smtp, EventKind.AUTH_FAILED)
    other = relay_event(cast.globex_smtp, EventKind.AUTH_FAILED)
    page = alice_client.get(EVENTS, {"since": moment(now - timedelta(hours=1))}).content.decode()
    assert f'id="event-{new.pk}"' in page
    assert f'id="event-{old.pk}"' not in page and f'id="event-{other.pk}"' not in page


def test_a_state_reached_before_the_period_ends_lists_its_message_though_another_clock_ran_ahead(
        alice_client, cast):
    # The relay machine's clock ran a minute ahead of the delivery worker's: the message
    # was stamped accepted after the moment its recipient was stamped failed.
    until = timezone.now().replace(second=0, microsecond=0)
    failed_message(cast.acme_smtp, ["x@example.net"], subject="skewed",
                   created=until + timedelta(minutes=1), finished_at=until - timedelta(seconds=1))
    failed_message(cast.acme_smtp, ["y@example.net"], subject="after the period",
                   created=until + timedelta(minutes=1), finished_at=until + timedelta(minutes=2))
    window = {"since": moment(until - timedelta(hours=1)), "until": moment(until)}
    assert subjects(alice_client, event="failed", **window) == ["skewed"]


def test_the_domain_of_the_period_is_that_of_recipients_of_messages_accepted_in_it(
        alice_client, cast):
    now = timezone.now()
    queue_message(cast.acme_smtp, ["a@small.test"], subject="old", created=now - timedelta(days=3))
    queue_message(cast.acme_smtp, ["b@Small.Test", "c@big.test"], subject="new")
    queue_message(cast.acme_smtp, ["d@big.test"], subject="other domain")
    queue_message(cast.globex_smtp, ["e@small.test"], subject="globex", sender="x@globex.test")
    day = {"since": moment(now - timedelta(hours=24)), "until": moment(now + timedelta(hours=1))}
    assert subjects(alice_client, domain="small.test", **day) == ["new"]
    assert subjects(alice_client, domain="small.test") == ["new", "old"]


def test_the_domain_filter_reads_the_recipient_domain_index(cast):
    """The filter compares the very expression the index holds (a plan, not a timing)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from relay.console.filters import filter_messages

    now = timezone.now()
    queue_message(cast.acme_smtp, ["a@small.test"])
    with CaptureQueriesContext(connection) as queries:
        found = list(filter_messages(cast.acme, {
            "domain": "small.test", "since": now - timedelta(days=1),
            "until": now + timedelta(hours=1)}))
    assert len(found) == 1
    recipients = next(q["sql"] for q in queries if 'FROM "relay_recipient"' in q["sql"])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")
            cursor.execute("EXPLAIN " + recipients)
        else:
            cursor.execute("EXPLAIN QUERY PLAN " + recipients)
        plan = "\n".join(str(row) for row in cursor.fetchall())
    assert "rcpt_account_domain" in plan, plan


def test_many_matching_recipients_are_joined_rather_than_listed_with_the_same_result(
        alice_client, cast, monkeypatch):
    from relay.console import filters

    now = timezone.now()
    failed_message(cast.acme_smtp, ["x@other.test"], subject="failed at other.test")
    queue_message(cast.acme_smtp, ["ok@other.test"], subject="accepted")
    window = {"since": moment(now - timedelta(hours=1)), "until": moment(now + timedelta(hours=1))}
    listed = (subjects(alice_client, domain="other.test", event="failed", **window),
              sorted(subjects(alice_client, domain="other.test", **window)))
    monkeypatch.setattr(filters, "LISTED_AT_MOST", 0)
    joined = (subjects(alice_client, domain="other.test", event="failed", **window),
              sorted(subjects(alice_client, domain="other.test", **window)))
    assert listed == joined == (["failed at other.test"], ["accepted", "failed at other.test"])
