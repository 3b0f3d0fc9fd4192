"""`Idempotency-Key`: a retried send gets its first answer back instead of a second
message; the same key with another request is refused; keys are per sender and kept a
day. And the limits on calls: per key and per SMTP+ user a minute (429 with
Retry-After), and the relay's brake on guessed passwords for HTTP Basic."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from accounts.actions.api_keys import create_api_key
from accounts.models import IdempotentRequest
from relay.models import EventKind, Message, RelayEvent
from tests.api.conftest import ApiClient, key_for
from tests.senders import authorize

pytestmark = pytest.mark.django_db

MESSAGE = {"from": "shop@acme.test", "to": ["a@example.net"], "subject": "Order 1",
           "text": "Thanks!"}


def send_key(smtp_user, name: str = "shop") -> str:
    return create_api_key(smtp_user.account, name=name, smtp_user=smtp_user)[1]


def post(credentials: str, body=MESSAGE, key: str | None = None, ip: str = "127.0.0.1"):
    headers = {"Authorization": credentials}
    if key is not None:
        headers["Idempotency-Key"] = key
    return Client(REMOTE_ADDR=ip).post("/api/v1/messages", json.dumps(body),
                                       content_type="application/json", headers=headers)


def bearer(key: str) -> str:
    return f"Bearer {key}"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def test_a_retry_with_the_same_key_returns_the_first_answer_and_queues_nothing_more(cast):
    key = bearer(send_key(cast.acme_smtp))
    first = post(key, key="order-1")
    assert first.status_code == 202 and "Idempotent-Replayed" not in first
    again = post(key, key="order-1")
    assert again.status_code == 202 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Message.objects.count() == 1
    # Another key is another message.
    assert post(key, key="order-2").json()["queue_id"] != first.json()["queue_id"]
    assert Message.objects.count() == 2


def test_without_a_key_every_request_queues_a_message(cast):
    key = bearer(send_key(cast.acme_smtp))
    assert post(key).status_code == post(key).status_code == 202
    assert Message.objects.count() == 2


def test_the_same_key_with_a_different_body_is_refused(cast):
    key = bearer(send_key(cast.acme_smtp))
    assert post(key, key="order-1").status_code == 202
    answer = post(key, {**MESSAGE, "subject": "Order 2"}, key="order-1")
    assert answer.status_code == 422
    assert answer.json()["code"] == "idempotency_key_reused"
    assert Message.objects.count() == 1


def test_keys_belong_to_their_sender(cast):
    """Two send keys, and the SMTP+ user's own login, each have their own keys."""
    first, second = bearer(send_key(cast.acme_smtp)), bearer(send_key(cast.acme_smtp, "b"))
    own = basic(cast.acme_smtp.username, cast.acme_smtp_password)
    answers = [post(credentials, key="same") for credentials in (first, second, own)]
    assert [a.status_code for a in answers] == [202, 202, 202]
    assert len({a.json()["queue_id"] for a in answers}) == 3
    assert post(own, key="same")["Idempotent-Replayed"] == "true"
    assert Message.objects.count() == 3


def test_a_refusal_is_not_remembered_so_a_fixed_retry_is_queued(cast):
    key = bearer(send_key(cast.acme_smtp))
    body = {**MESSAGE, "from": "news@acme-news.test"}
    assert post(key, body, key="news-1").status_code == 403
    authorize(cast.acme_smtp, "acme-news.test")
    assert post(key, body, key="news-1").status_code == 202


def test_a_key_is_kept_24_hours(cast):
    key = bearer(send_key(cast.acme_smtp))
    assert post(key, key="order-1").status_code == 202
    IdempotentRequest.objects.update(created=timezone.now() - timedelta(hours=24, minutes=1))
    answer = post(key, key="order-1")
    assert answer.status_code == 202 and "Idempotent-Replayed" not in answer
    assert Message.objects.count() == 2 and IdempotentRequest.objects.count() == 1


@pytest.mark.parametrize("bad", ["", "x" * 256, "ключ"])
def test_a_malformed_key_is_refused(cast, bad):
    answer = post(bearer(send_key(cast.acme_smtp)), key=bad)
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_idempotency_key"
    assert not Message.objects.exists()


# --- call limits -----------------------------------------------------------------------


def test_a_key_over_its_calls_a_minute_gets_429_with_retry_after(cast, settings):
    settings.API_RATE_LIMIT = 3
    key = bearer(send_key(cast.acme_smtp))
    assert [post(key).status_code for _ in range(3)] == [202, 202, 202]
    answer = post(key)
    assert answer.status_code == 429
    assert answer.json()["code"] == "rate_limited"
    assert 1 <= int(answer["Retry-After"]) <= 60
    assert Message.objects.count() == 3
    # Each key counts for itself; management keys too.
    assert post(bearer(send_key(cast.acme_smtp, "other"))).status_code == 202
    manager = ApiClient(key_for(cast.acme))
    assert [manager.get("/smtp-users").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_an_smtp_user_logging_in_with_basic_has_the_same_limit(cast, settings):
    settings.API_RATE_LIMIT = 2
    own = basic(cast.acme_smtp.username, cast.acme_smtp_password)
    assert [post(own).status_code for _ in range(3)] == [202, 202, 429]


def test_guessed_basic_passwords_hit_the_relays_cool_off(cast, settings):
    settings.RELAY_AUTH_FAILURE_LIMIT = 3
    settings.RELAY_AUTH_COOLOFF = 900
    wrong = basic(cast.acme_smtp.username, "guess")
    assert [post(wrong).status_code for _ in range(3)] == [401, 401, 401]
    # Now even the right password is not checked from that address...
    right = basic(cast.acme_smtp.username, cast.acme_smtp_password)
    answer = post(right)
    assert answer.status_code == 429 and int(answer["Retry-After"]) > 600
    assert answer.json()["smtp_reply"].startswith("421 4.7.0 Too many failed logins")
    # ...but from another one it is.
    assert post(right, ip="::1").status_code == 202
    kinds = list(RelayEvent.objects.values_list("kind", flat=True))
    assert kinds.count(EventKind.AUTH_FAILED) == 1  # folded: one row, count 3
    assert RelayEvent.objects.get(kind=EventKind.AUTH_FAILED).count == 3
    assert EventKind.AUTH_COOLOFF in kinds


@pytest.mark.postgres
def test_two_identical_requests_at_the_same_time_queue_one_message(transactional_db, cast):
    import threading

    from django.db import connections

    key = bearer(send_key(cast.acme_smtp))
    barrier, answers = threading.Barrier(4), []

    def send() -> None:
        barrier.wait()
        try:
            answers.append(post(key, key="twin"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=send) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert [a.status_code for a in answers] == [202] * 4
    assert len({a.json()["queue_id"] for a in answers}) == 1
    assert Message.objects.count() == 1
