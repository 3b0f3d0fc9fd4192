"""The send API answers 202 only once the message and its recipients are committed: a
database that fails on the way, or cannot be reached at all, is a JSON 503, never a 202,
and nothing half-written stays behind."""

from __future__ import annotations

import base64
import json

import pytest
from django.test import Client

from accounts.actions.api_keys import create_api_key
from relay.models import EventKind, Message, Recipient, RelayEvent
from tests.relay.smtp.test_database_down import table_gone
from tests.test_database_unavailable import UNREACHABLE, console_on

MESSAGE = {"from": "shop@acme.test", "to": ["a@example.net", "b@example.net"],
           "subject": "Durable", "text": "Hello."}


def post(key: str, body: dict = MESSAGE, **headers: str):
    return Client(REMOTE_ADDR="127.0.0.1").post(
        "/api/v1/messages", json.dumps(body), content_type="application/json",
        headers={"Authorization": f"Bearer {key}", **headers})


@pytest.mark.parametrize("table", ["relay_message", "relay_recipient"])
def test_a_failing_store_is_a_503_with_the_relays_451_text_and_stores_nothing(
        transactional_db, cast, table):
    _, key = create_api_key(cast.acme, name="shop", smtp_user=cast.acme_smtp)
    with table_gone(table):
        answer = post(key, Idempotency_Key="order-1")
    assert answer.status_code == 503
    assert answer["Retry-After"] == "30"
    assert answer.json() == {"code": "store_failed",
                             "message": "Could not store the message, try again later",
                             "smtp_reply": "451 4.3.0 Could not store the message, try again later"}
    # The message row of the failed transaction went with it (recipients failed after it).
    assert not Message.objects.exists() and not Recipient.objects.exists()
    event = RelayEvent.objects.get()
    assert (event.kind, event.smtp_user) == (EventKind.STORE_FAILED, cast.acme_smtp)
    # Nothing was remembered for the idempotency key: the retry is queued.
    again = post(key, Idempotency_Key="order-1")
    assert again.status_code == 202
    assert Message.objects.count() == 1 and Recipient.objects.count() == 2


@pytest.fixture(params=sorted(UNREACHABLE))
def console_without_database(request, tmp_path):
    with console_on(UNREACHABLE[request.param](tmp_path), tmp_path) as console:
        yield console


def test_a_console_without_its_database_answers_a_json_503_to_every_send(
        console_without_database):
    body = json.dumps(MESSAGE)
    for auth in ("Bearer smtpk_abcdefgh_" + "x" * 32,
                 "Basic " + base64.b64encode(b"smtp-someone:password").decode()):
        for path in ("/api/v1/messages", "/api/v1/messages/raw?from=a@b.test&to=c@d.test"):
            status, headers, text = console_without_database.request(
                "POST", path, body, headers={"Authorization": auth,
                                             "Content-Type": "application/json"})
            assert status == 503, (path, text)
            assert headers["content-type"].startswith("application/json")
            assert headers["retry-after"] == "30"
            assert json.loads(text)["code"] == "database_unavailable"
