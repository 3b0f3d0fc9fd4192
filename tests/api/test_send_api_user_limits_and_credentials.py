"""A send key and HTTP Basic are held to the SMTP+ user's hourly limit as SMTP is (one
count of messages, whatever their recipients, shared with the relay's sessions), and an
admin's change to the user applies to the very next request: a disabled or deleted user
sends no more, with the relay's answer; a password reset stops the old password at once
and leaves the user's send keys working (a send key is a credential of its own). The
suppression list is the relay's, read once for all of a request's recipients."""

from __future__ import annotations

import base64
import json
import smtplib
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.actions.api_keys import create_api_key
from accounts.actions.smtp_users import delete_smtp_user, reset_password, set_active
from accounts.audit import Actor
from accounts.models import SmtpUser
from relay import suppressions
from relay.models import EventKind, Message, Recipient, RelayEvent
from relay.smtp import replies
from tests.smtp_relay import message

RATE_LIMITED = "451 4.7.1 Sending rate limit exceeded, try again later"
MESSAGE = {"from": "shop@acme.test", "subject": "Hello", "text": "Hello."}


def send(auth: str, to: list[str]):
    return Client(REMOTE_ADDR="127.0.0.1").post(
        "/api/v1/messages", json.dumps({**MESSAGE, "to": to}), content_type="application/json",
        headers={"Authorization": auth})


def bearer(key: str) -> str:
    return f"Bearer {key}"


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def send_key(cast) -> str:
    return create_api_key(cast.acme, name="shop", smtp_user=cast.acme_smtp)[1]


def recipients(n: int) -> list[str]:
    return [f"r{i}@example.net" for i in range(n)]


def smtp_login(relay, username: str, password: str) -> smtplib.SMTP:
    smtp = smtplib.SMTP(relay.host, relay.port, timeout=10)
    smtp.login(username, password)
    return smtp


def test_api_and_smtp_share_one_hourly_count_of_messages_whatever_their_recipients(relay, cast):
    SmtpUser.objects.filter(pk=cast.acme_smtp.pk).update(hourly_limit=3)
    key = bearer(send_key(cast))
    # Two messages of ten recipients each: two of the three, not twenty.
    for _ in range(2):
        answer = send(key, recipients(10))
        assert (answer.status_code, answer.json()["recipients"]) == (202, 10)
    # A session that logs in now counts them: one more message, then the relay's refusal.
    smtp = smtp_login(relay, cast.acme_smtp.username, cast.acme_smtp_password)
    try:
        assert smtp.sendmail("shop@acme.test", recipients(10), message()) == {}
        assert smtp.mail("shop@acme.test") == (451, RATE_LIMITED[4:].encode())
    finally:
        smtp.quit()
    # The message the session sent counts for the API too, with either credential.
    for auth in (key, basic(cast.acme_smtp.username, cast.acme_smtp_password)):
        answer = send(auth, recipients(1))
        assert (answer.status_code, answer["Retry-After"]) == (429, "60")
        assert answer.json() == {"code": "hourly_limit", "smtp_reply": RATE_LIMITED,
                                 "message": RATE_LIMITED[10:]}
    assert Message.objects.count() == 3 and Recipient.objects.count() == 30
    relay.flush()
    limited = RelayEvent.objects.filter(kind=EventKind.RATE_LIMITED)
    assert {(e.reason, e.reply, e.smtp_user_id) for e in limited} == {
        ("3 messages per hour", RATE_LIMITED, cast.acme_smtp.pk)}


def test_consecutive_requests_stop_exactly_at_the_hourly_limit(cast):
    SmtpUser.objects.filter(pk=cast.acme_smtp.pk).update(hourly_limit=4)
    key = bearer(send_key(cast))
    statuses = [send(key, recipients(3)).status_code for _ in range(6)]
    assert statuses == [202, 202, 202, 202, 429, 429]
    assert Message.objects.count() == 4


def test_an_hourly_limit_set_by_an_admin_applies_to_the_next_request(cast):
    key = bearer(send_key(cast))
    assert send(key, recipients(1)).status_code == 202
    cast.acme_smtp.hourly_limit = 1
    cast.acme_smtp.save()
    assert send(key, recipients(1)).status_code == 429


def test_a_disabled_user_is_refused_at_the_next_request_with_the_relays_reply(relay, cast):
    key = bearer(send_key(cast))
    password = cast.acme_smtp_password
    assert send(key, recipients(1)).status_code == 202
    set_active(SmtpUser.objects.get(pk=cast.acme_smtp.pk), False)
    # What the relay answers the disabled user's login...
    with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
        smtp_login(relay, cast.acme_smtp.username, password)
    relay_reply = f"{refused.value.smtp_code} {refused.value.smtp_error.decode()}"
    assert relay_reply == replies.AUTH_FAILED
    # ...is the send key's answer (saying why: the key is the caller's own credential)...
    answer = send(key, recipients(1))
    assert answer.status_code == 403
    assert answer.json() == {
        "code": "smtp_user_disabled", "smtp_reply": relay_reply,
        "message": f"Authentication credentials invalid: SMTP+ user "
                   f"{cast.acme_smtp.username} is disabled: enable it to send"}
    # ...and HTTP Basic's, exactly as a wrong password (SMTP tells them apart to no one).
    answer = send(basic(cast.acme_smtp.username, password), recipients(1))
    assert (answer.status_code, answer.json()["smtp_reply"]) == (401, relay_reply)
    assert Message.objects.count() == 1
    relay.flush()
    reasons = set(RelayEvent.objects.filter(kind=EventKind.AUTH_FAILED)
                  .values_list("reason", flat=True))
    assert reasons == {"user disabled", "user disabled (send key shop)"}
    # Enabled again: the same key sends at once.
    set_active(SmtpUser.objects.get(pk=cast.acme_smtp.pk), True)
    assert send(key, recipients(1)).status_code == 202


def test_a_deleted_users_send_keys_stop_at_the_next_request(cast):
    key = bearer(send_key(cast))
    assert send(key, recipients(1)).status_code == 202
    delete_smtp_user(SmtpUser.objects.get(pk=cast.acme_smtp.pk))
    answer = send(key, recipients(1))
    assert answer.status_code == 401
    assert answer.json() == {"code": "invalid_key", "message": "The API key is not valid."}
    answer = send(basic(cast.acme_smtp.username, cast.acme_smtp_password), recipients(1))
    assert (answer.status_code, answer.json()["smtp_reply"]) == (401, replies.AUTH_FAILED)
    assert Message.objects.count() == 1


def test_a_password_reset_stops_the_old_password_at_once_and_keeps_the_send_keys(cast):
    key = bearer(send_key(cast))
    old = basic(cast.acme_smtp.username, cast.acme_smtp_password)
    assert send(old, recipients(1)).status_code == 202
    new_password = reset_password(SmtpUser.objects.get(pk=cast.acme_smtp.pk))
    answer = send(old, recipients(1))
    assert (answer.status_code, answer.json()["code"]) == (401, "auth_failed")
    assert send(basic(cast.acme_smtp.username, new_password), recipients(1)).status_code == 202
    assert send(key, recipients(1)).status_code == 202
    assert Message.objects.count() == 3


def test_the_suppression_list_is_read_once_for_all_recipients_and_refuses_as_the_relay(cast):
    actor = Actor.system("test")
    suppressions.add(cast.acme, "r6@example.net", actor)
    suppressions.add(cast.acme, "r2@example.net", actor,
                     expires=timezone.now() - timedelta(days=1))  # expired
    key = bearer(send_key(cast))
    with CaptureQueriesContext(connection) as queries:
        answer = send(key, [*recipients(6), "R6@Example.NET", *recipients(10)[7:]])
    lookups = [q["sql"] for q in queries.captured_queries if "relay_suppression" in q["sql"]]
    assert len(lookups) == 1
    assert answer.status_code == 422
    # The relay's reply for the entry, naming the address as the request wrote it.
    entry = suppressions.active(cast.acme.pk, "r6@example.net")
    assert answer.json()["smtp_reply"] == suppressions.refusal_reply(entry, "R6@Example.NET")
    assert not Message.objects.exists()
    # The others go: r2's entry has expired.
    answer = send(key, recipients(6))
    assert (answer.status_code, answer.json()["recipients"]) == (202, 6)
