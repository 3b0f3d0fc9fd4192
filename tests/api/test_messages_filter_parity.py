"""GET /api/v1/messages takes every filter of the console's messages log, with the same
meanings: for one seeded set of messages, each filter (and a few combinations) selects
the same messages, in the same order and the same pages, in the API as on the console's
page; another account's key sees none of them. The same for the relay events."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.actions.smtp_users import create_smtp_user
from relay.console.stats import moment
from relay.forms import EventFilterForm, MessageFilterForm
from relay.models import Attempt, EventKind, Message, Recipient, RecipientStatus, RelayEvent
from tests.alerts.conftest import relay_event
from tests.conftest import login
from tests.relay.console.test_messages import make_message

pytestmark = pytest.mark.django_db
LOG = reverse("relay:messages")


def seed(cast) -> dict[str, Message]:  # noqa: ANN001
    """Acme's messages (two SMTP+ users), each selected by some filters and not others."""
    now = timezone.now()
    second, _ = create_smtp_user(cast.acme, name="Acme newsletter")
    shop = cast.acme_smtp
    made = {
        "delivered": make_message(shop, created=now - timedelta(hours=2),
                                  recipients=[("a@example.net", RecipientStatus.DELIVERED)]),
        "failed": make_message(shop, sender="billing@acme.test", created=now - timedelta(days=3),
                               recipients=[("x@Other.Test", RecipientStatus.FAILED)]),
        "deferred": make_message(second, sender="news@acme.test", created=now - timedelta(hours=1),
                                 recipients=[("slow@other.test", RecipientStatus.DEFERRED)]),
        "report": make_message(shop, sender="", created=now - timedelta(minutes=30),
                               recipients=[("shop@acme.test", RecipientStatus.DELIVERED)]),
        "mixed": make_message(second, created=now - timedelta(days=2),
                              recipients=[("ok@other.test", RecipientStatus.DELIVERED),
                                          ("bad@example.net", RecipientStatus.FAILED)]),
        "queued": make_message(shop, sender="Shop@Acme.test", created=now - timedelta(minutes=1),
                               recipients=[("q@example.org", RecipientStatus.QUEUED)]),
    }
    # The old failure failed only now; the deferral was tried a minute ago.
    Recipient.objects.filter(message=made["failed"]).update(finished_at=now - timedelta(minutes=5))
    slow = Recipient.objects.get(message=made["deferred"])
    Attempt.objects.create(recipient=slow, outcome="deferred", code=451, text="Busy",
                           started=now - timedelta(minutes=2))
    make_message(cast.globex_smtp, sender="crm@globex.test", created=now - timedelta(minutes=10),
                 recipients=[("x@other.test", RecipientStatus.FAILED)])
    return made


def filters(cast) -> list[dict[str, str]]:  # noqa: ANN001
    now = timezone.now()
    users = list(cast.acme.smtp_users.order_by("pk").values_list("pk", flat=True))
    today = now.date()
    last_hour = {"since": moment(now - timedelta(minutes=90)), "until": moment(now + timedelta(hours=1))}
    day = {"since": moment(now - timedelta(days=1)), "until": moment(now + timedelta(hours=1))}
    return [
        {},
        *({"user": str(pk)} for pk in users),
        *({"status": status} for status in RecipientStatus.values),
        {"kind": "mail"}, {"kind": "dsn"},
        {"sender": "shop"}, {"sender": "SHOP@acme.test", "sender_match": "equals"},
        {"sender": "acme.test", "sender_match": "contains"},
        {"recipient": "other.test"}, {"recipient": "EXAMPLE"},
        {"domain": "other.test"}, {"domain": "OTHER.test."}, {"domain": "example.net"},
        {"date_from": today.isoformat()}, {"date_to": (today - timedelta(days=1)).isoformat()},
        {"date_from": (today - timedelta(days=3)).isoformat(),
         "date_to": (today - timedelta(days=2)).isoformat()},
        last_hour, {"since": last_hour["since"]}, {"until": moment(now - timedelta(hours=3))},
        {**day, "event": "delivered"}, {**day, "event": "deferred"}, {**day, "event": "failed"},
        {**day, "event": "failed", "domain": "other.test"},
        {**day, "domain": "other.test"},
        {"event": "failed"},
        {"user": str(users[0]), "status": "delivered", "kind": "mail"},
        {"status": "failed", "recipient": "example", "sender": "acme"},
    ]


def console_page(client, params: dict[str, str]) -> tuple[list[int], str | None]:  # noqa: ANN001
    response = client.get(LOG, params)
    assert response.status_code == 200
    assert not response.context["form"].errors, response.context["form"].errors
    page = response.context["page"]
    return [m.pk for m in page.items], page.older


def api_page(api, params: dict[str, str]) -> tuple[list[int], str | None]:  # noqa: ANN001
    answer = api.get("/messages", **params)
    assert answer.status_code == 200, answer.json()
    data = answer.json()
    return [m["id"] for m in data["items"]], data["older"]


def test_every_console_filter_is_an_api_query_parameter(client):
    document = client.get("/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/messages"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert names == set(MessageFilterForm.base_fields) | {"before", "after"}


def test_each_filter_selects_the_same_messages_as_the_console(client, cast, acme_reader):
    made = seed(cast)
    login(client, cast.alice)
    seen = set()
    for params in filters(cast):
        console, _ = console_page(client, params)
        assert api_page(acme_reader, params)[0] == console, params
        seen.add(tuple(console))
    # The filters mean something: they do not all select the same messages.
    assert len(seen) >= 15
    ids = {name: m.pk for name, m in made.items()}
    assert api_page(acme_reader, {"kind": "dsn"})[0] == [ids["report"]]
    assert api_page(acme_reader, {"domain": "other.test"})[0] == [ids["deferred"], ids["mixed"],
                                                                  ids["failed"]]
    day = {"since": moment(timezone.now() - timedelta(days=1))}
    assert api_page(acme_reader, {**day, "event": "failed"})[0] == [ids["failed"]]
    assert api_page(acme_reader, {**day, "event": "deferred"})[0] == [ids["deferred"]]


def test_an_aware_time_means_the_same_moment_as_the_consoles_time_zone(client, cast, acme_reader,
                                                                      settings):
    settings.TIME_ZONE = "Europe/Paris"
    made = seed(cast)
    login(client, cast.alice)
    since = timezone.now() - timedelta(minutes=90)
    local = {"since": moment(since)}  # the console's datetime-local field, in Paris time
    console, _ = console_page(client, local)
    assert api_page(acme_reader, local)[0] == console
    aware = {"since": since.replace(second=0, microsecond=0).isoformat()}  # UTC, with offset
    assert api_page(acme_reader, aware)[0] == console
    assert made["deferred"].pk in console and made["delivered"].pk not in console


def test_filtered_pages_and_their_cursors_are_the_consoles(client, cast, acme_reader):
    now = timezone.now()
    for i in range(55):
        make_message(cast.acme_smtp, created=now - timedelta(minutes=i),
                     recipients=[(f"r{i}@other.test", RecipientStatus.FAILED)])
        make_message(cast.acme_smtp, created=now - timedelta(minutes=i, seconds=30))
    login(client, cast.alice)
    params = {"domain": "other.test", "status": "failed"}
    first = console_page(client, params)
    assert api_page(acme_reader, params) == first and len(first[0]) == 50
    second = console_page(client, {**params, "before": first[1]})
    assert api_page(acme_reader, {**params, "before": first[1]}) == second
    assert len(second[0]) == 5


def test_another_accounts_key_sees_none_of_the_messages_with_any_filter(cast, acme_reader,
                                                                        globex_api):
    seed(cast)
    acme_ids = set(Message.objects.filter(account=cast.acme).values_list("pk", flat=True))
    for params in filters(cast):
        if "user" in params:  # Acme's users are no filter for Globex: tested in test_messages_api
            continue
        assert not set(api_page(globex_api, params)[0]) & acme_ids, params
    globex_ids = set(Message.objects.filter(account=cast.globex).values_list("pk", flat=True))
    assert not set(api_page(acme_reader, {})[0]) & globex_ids


@pytest.mark.parametrize(("params", "error"), [
    ({"domain": "bob@example.net"}, "Recipient domain: enter a domain name"),
    ({"since": "2026-12-03T10:00", "until": "2026-12-03T09:00"},
     "The period's start is not before its end."),
    ({"date_from": "2026-12-03", "date_to": "2026-12-01"}, "The start date is after the end date."),
    ({"since": "0001-01-01T00:00"}, "enter a time between 1970-01-01"),
])
def test_filters_the_console_refuses_are_a_422_with_its_message(acme_reader, cast, params, error):
    answer = acme_reader.get("/messages", **params)
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_filters" and error in answer.json()["message"]


def test_a_value_outside_a_filters_choices_is_refused(acme_reader, cast):
    for params in ({"event": "accepted"}, {"kind": "bounce"}, {"sender_match": "starts"}):
        answer = acme_reader.get("/messages", **params)
        assert answer.status_code == 422 and answer.json()["code"] == "invalid", params


def test_every_relay_events_filter_of_the_console_is_an_api_query_parameter(client):
    document = client.get("/api/v1/openapi.json").json()
    operation = document["paths"]["/api/v1/relay-events"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert names == set(EventFilterForm.base_fields) | {"before", "after"}


def test_relay_events_filters_select_the_same_events_as_the_console(client, cast, acme_reader,
                                                                    globex_api):
    now = timezone.now()
    relay_event(cast.acme_smtp, EventKind.AUTH_FAILED, last_seen=now - timedelta(hours=5))
    relay_event(cast.acme_smtp, EventKind.AUTH_FAILED, last_seen=now - timedelta(minutes=5))
    relay_event(cast.acme_smtp, EventKind.SENDER_REJECTED, last_seen=now - timedelta(hours=2))
    relay_event(cast.globex_smtp, EventKind.AUTH_FAILED)
    login(client, cast.alice)
    acme_ids = set(RelayEvent.objects.filter(account=cast.acme).values_list("pk", flat=True))
    for params in ({}, {"kind": "auth_failed"}, {"since": moment(now - timedelta(hours=3))},
                   {"until": moment(now - timedelta(hours=1))},
                   {"kind": "auth_failed", "since": moment(now - timedelta(hours=1)),
                    "until": moment(now + timedelta(hours=1))},
                   {"user": str(cast.acme_smtp.pk), "kind": "sender_rejected"}):
        console = [e.pk for e in client.get(reverse("relay:events"), params).context["page"].items]
        answer = acme_reader.get("/relay-events", **params).json()
        assert [e["id"] for e in answer["items"]] == console, params
        if "user" not in params:
            theirs = {e["id"] for e in globex_api.get("/relay-events", **params).json()["items"]}
            assert not theirs & acme_ids, params
    assert len(acme_reader.get("/relay-events", since=moment(now - timedelta(hours=3))).json()["items"]) == 2
