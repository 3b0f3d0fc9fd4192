"""/api/v1/relay-events and /api/v1/audit-log: the account's rows only, filtered and
paged like the console's pages."""

from __future__ import annotations

import pytest

from accounts import audit
from accounts.audit import Actor
from relay.models import EventKind
from tests.relay.console.test_events import make_event

pytestmark = pytest.mark.django_db


def test_it_lists_the_accounts_relay_events_newest_first(acme_reader, cast):
    old = make_event(cast.acme, cast.acme_smtp, ago=10)
    new = make_event(cast.acme, cast.acme_smtp, kind=EventKind.SENDER_REJECTED, ago=1)
    make_event(cast.globex, cast.globex_smtp)
    data = acme_reader.get("/relay-events").json()
    assert [e["id"] for e in data["items"]] == [new.pk, old.pk]
    assert data["items"][1]["reply"].startswith("535")


def test_it_filters_relay_events_by_kind(acme_reader, cast):
    make_event(cast.acme, cast.acme_smtp)
    refused = make_event(cast.acme, cast.acme_smtp, kind=EventKind.SENDER_REJECTED)
    data = acme_reader.get("/relay-events", kind=EventKind.SENDER_REJECTED).json()
    assert [e["id"] for e in data["items"]] == [refused.pk]


def test_charlies_key_sees_no_acme_event(globex_api, cast):
    make_event(cast.acme, cast.acme_smtp)
    assert globex_api.get("/relay-events").json()["items"] == []
    assert globex_api.get("/relay-events", user=cast.acme_smtp.pk).status_code == 422


def test_the_audit_log_lists_the_accounts_events_newest_first(acme_reader, cast):
    audit.record("smtpuser.edit", account=cast.acme, actor=Actor.system("test"), target=cast.acme_smtp)
    data = acme_reader.get("/audit-log").json()
    actions = [e["action"] for e in data["items"]]
    assert actions[0] == "smtpuser.edit" and "apikey.create" in actions
    assert data["items"][0]["actor"] == "test"


def test_the_audit_log_filters_and_pages(acme_reader, cast):
    for n in range(105):
        audit.record("smtpuser.edit", account=cast.acme, actor=Actor.system(f"bot {n}"))
    first = acme_reader.get("/audit-log", action="smtpuser.edit").json()
    assert len(first["items"]) == 100 and first["older"]
    rest = acme_reader.get("/audit-log", action="smtpuser.edit", before=first["older"]).json()
    assert [e["actor"] for e in rest["items"]] == [f"bot {n}" for n in range(4, -1, -1)]
    assert rest["older"] is None


def test_charlies_key_sees_nothing_of_acmes_audit_log(globex_api, cast):
    data = globex_api.get("/audit-log").json()
    assert {e["target_label"] for e in data["items"]}.isdisjoint({"Acme", cast.acme_smtp.username})
    assert all("acme" not in str(e).lower() for e in data["items"])
