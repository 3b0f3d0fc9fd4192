"""The send API: a send key or the SMTP+ user's own credentials queue a message with the
relay's rules; 202 with the queue id only once it is stored; refusals answer the relay's
reply as JSON and record the relay's event."""

from __future__ import annotations

import base64
import json
from email import message_from_bytes, policy

import pytest
from django.test import Client

from accounts.actions.api_keys import create_api_key
from accounts.actions.smtp_users import set_active
from accounts.models import ApiKeyRole
from relay.models import EventKind, Message, Recipient, RelayEvent
from tests.api.conftest import ApiClient, key_for

pytestmark = pytest.mark.django_db


def send_key(smtp_user, **fields) -> str:
    _, raw = create_api_key(smtp_user.account, name=fields.pop("name", "web shop sender"),
                            smtp_user=smtp_user, **fields)
    return raw


@pytest.fixture
def shop(cast) -> ApiClient:
    """A send key of Acme's web shop SMTP+ user (authorized for acme.test)."""
    return ApiClient(send_key(cast.acme_smtp))


def basic(username: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


MESSAGE = {"from": "Acme Shop <shop@acme.test>", "to": ["a@example.net"],
           "subject": "Your order", "text": "Thanks!"}


def test_a_send_key_queues_a_json_message_and_answers_202_with_its_queue_id(cast, shop):
    answer = shop.post("/messages", MESSAGE)
    assert answer.status_code == 202, answer.content
    body = answer.json()
    message = Message.objects.get(queue_id=body["queue_id"])
    assert body == {"id": message.pk, "queue_id": message.queue_id,
                    "message_id": message.message_id, "recipients": 1}
    assert (message.account, message.smtp_user) == (cast.acme, cast.acme_smtp)
    assert message.envelope_from == "shop@acme.test"
    assert message.subject == "Your order"
    assert [r.address for r in message.recipients.all()] == ["a@example.net"]
    parsed = message_from_bytes(bytes(message.raw), policy=policy.default)
    assert parsed["From"] == "Acme Shop <shop@acme.test>"
    assert parsed.get_content().strip() == "Thanks!"
    assert f"(SMTP+) with HTTP id {message.queue_id}" in parsed["Received"]


def test_cc_bcc_reply_to_headers_html_and_attachments_make_one_message(cast, shop):
    answer = shop.post("/messages", {
        **MESSAGE, "to": ["a@example.net", "A <a@example.net>"], "cc": ["Bo <b@example.net>"],
        "bcc": ["hidden@example.net"], "reply_to": ["help@acme.test"],
        "html": "<p>Thanks!</p>", "headers": {"X-Order": "1234", "In-Reply-To": "<x@y>"},
        "attachments": [{"filename": "invoice.pdf", "content_type": "application/pdf",
                         "content": base64.b64encode(b"%PDF-1.4 fake").decode()}],
    })
    assert answer.status_code == 202, answer.content
    assert answer.json()["recipients"] == 3  # a@ once
    message = Message.objects.get()
    assert sorted(r.address for r in message.recipients.all()) == [
        "a@example.net", "b@example.net", "hidden@example.net"]
    parsed = message_from_bytes(bytes(message.raw), policy=policy.default)
    assert "Bcc" not in parsed and "hidden@" not in bytes(message.raw).decode()
    assert parsed["Cc"] == "Bo <b@example.net>" and parsed["Reply-To"] == "help@acme.test"
    assert parsed["X-Order"] == "1234"
    assert parsed.get_body(("html",)).get_content().strip() == "<p>Thanks!</p>"
    [attachment] = parsed.iter_attachments()
    assert attachment.get_filename() == "invoice.pdf"
    assert attachment.get_content() == b"%PDF-1.4 fake"


def test_the_smtp_users_own_credentials_send_with_http_basic(cast):
    client = Client(REMOTE_ADDR="127.0.0.1")
    answer = client.post("/api/v1/messages", json.dumps(MESSAGE), content_type="application/json",
                         headers=basic(cast.acme_smtp.username, cast.acme_smtp_password))
    assert answer.status_code == 202, answer.content
    assert Message.objects.get().smtp_user == cast.acme_smtp


def test_a_wrong_password_is_the_relays_535_and_records_a_failed_login(cast):
    client = Client(REMOTE_ADDR="127.0.0.1")
    answer = client.post("/api/v1/messages", json.dumps(MESSAGE), content_type="application/json",
                         headers=basic(cast.acme_smtp.username, "wrong"))
    assert answer.status_code == 401
    assert answer.json() == {"code": "auth_failed",
                             "message": "Authentication credentials invalid",
                             "smtp_reply": "535 5.7.8 Authentication credentials invalid"}
    event = RelayEvent.objects.get()
    assert (event.kind, event.reason, event.smtp_user, event.port) == (
        EventKind.AUTH_FAILED, "wrong password", cast.acme_smtp, None)
    assert not Message.objects.exists()


def test_basic_over_plain_http_from_another_machine_is_refused_and_says_why(cast, settings):
    settings.DEBUG = False
    client = Client(REMOTE_ADDR="192.0.2.50")
    answer = client.post("/api/v1/messages", json.dumps(MESSAGE), content_type="application/json",
                         headers=basic(cast.acme_smtp.username, cast.acme_smtp_password))
    assert answer.status_code == 403
    assert answer.json()["code"] == "tls_required"
    assert "over HTTPS only" in answer.json()["message"]
    assert not Message.objects.exists()
    # Over HTTPS the same call is fine.
    answer = client.post("/api/v1/messages", json.dumps(MESSAGE), content_type="application/json",
                         headers=basic(cast.acme_smtp.username, cast.acme_smtp_password),
                         secure=True)
    assert answer.status_code == 202


def test_an_unauthorized_sender_gets_the_relays_550_and_the_same_event(cast, shop):
    answer = shop.post("/messages", {**MESSAGE, "from": "ceo@evil.test"})
    assert answer.status_code == 403
    reply = ("550 5.7.1 Sender <ceo@evil.test> is not authorized for SMTP+ user "
             f"{cast.acme_smtp.username}: authorize the address or its domain for this user "
             "in the SMTP+ console")
    assert answer.json() == {"code": "sender_not_authorized", "message": reply[10:],
                             "smtp_reply": reply}
    event = RelayEvent.objects.get()
    assert (event.kind, event.reply, event.address, event.smtp_user, event.account) == (
        EventKind.SENDER_REJECTED, reply, "ceo@evil.test", cast.acme_smtp, cast.acme)
    assert not Message.objects.exists()


def test_a_raw_message_is_queued_with_the_envelope_from_the_query(cast, shop):
    raw = b"From: shop@acme.test\nTo: a@example.net\nSubject: raw\n\nHello\n"
    answer = shop.client.post("/api/v1/messages/raw?from=shop@acme.test&to=a@example.net&to=b@example.net",
                              raw, content_type="message/rfc822", headers=shop._headers())
    assert answer.status_code == 202, answer.content
    message = Message.objects.get()
    assert message.subject == "raw" and message.recipients.count() == 2
    assert bytes(message.raw).endswith(b"Subject: raw\r\n\r\nHello\r\n")


def test_a_raw_message_with_an_unauthorized_from_header_is_refused(cast, shop):
    raw = b"From: boss@evil.test\r\nSubject: raw\r\n\r\nHello\r\n"
    answer = shop.client.post("/api/v1/messages/raw?from=shop@acme.test&to=a@example.net",
                              raw, content_type="message/rfc822", headers=shop._headers())
    assert answer.status_code == 403
    assert answer.json()["code"] == "from_not_authorized"
    assert "in the From: header is not authorized" in answer.json()["message"]
    assert RelayEvent.objects.get().kind == EventKind.FROM_REJECTED


def test_the_relays_limits_apply(cast, shop, settings):
    settings.RELAY_MAX_RECIPIENTS = 2
    answer = shop.post("/messages", {**MESSAGE, "to": ["a@x.test", "b@x.test", "c@x.test"]})
    assert (answer.status_code, answer.json()["smtp_reply"]) == (422, "452 4.5.3 Too many recipients")
    settings.RELAY_MAX_MESSAGE_SIZE = 500
    answer = shop.post("/messages", {**MESSAGE, "text": "x " * 400})
    assert answer.status_code == 413
    assert answer.json()["smtp_reply"] == "552 5.3.4 Message size exceeds fixed maximum message size"
    assert not Message.objects.exists()
    assert set(RelayEvent.objects.values_list("kind", flat=True)) == {
        EventKind.TOO_MANY_RECIPIENTS, EventKind.SIZE_EXCEEDED}


def test_the_hourly_limit_answers_429_with_retry_after(cast, shop):
    cast.acme_smtp.hourly_limit = 1
    cast.acme_smtp.save()
    assert shop.post("/messages", MESSAGE).status_code == 202
    answer = shop.post("/messages", MESSAGE)
    assert answer.status_code == 429 and answer["Retry-After"] == "60"
    assert answer.json()["smtp_reply"] == "451 4.7.1 Sending rate limit exceeded, try again later"
    assert Message.objects.count() == 1
    assert RelayEvent.objects.get().kind == EventKind.RATE_LIMITED


def test_a_send_key_of_a_disabled_user_cannot_send(cast, shop):
    set_active(cast.acme_smtp, False)
    answer = shop.post("/messages", MESSAGE)
    assert (answer.status_code, answer.json()["code"]) == (403, "smtp_user_disabled")
    assert not Message.objects.exists()


def test_a_management_key_cannot_send_and_a_send_key_cannot_manage(cast, shop):
    admin = ApiClient(key_for(cast.acme, ApiKeyRole.ADMIN))
    answer = admin.post("/messages", MESSAGE)
    assert (answer.status_code, answer.json()["code"]) == (403, "not_a_send_key")
    for path in ("/smtp-users", "/messages", "/audit-log"):
        answer = shop.get(path)
        assert (answer.status_code, answer.json()["code"]) == (403, "send_key"), path
    assert not Message.objects.exists()


@pytest.mark.parametrize("body, where", [
    ({**MESSAGE, "from": "two@acme.test, three@acme.test"}, "from"),
    ({**MESSAGE, "to": ["ok@example.net", "not an address"]}, "to[1]"),
    ({**MESSAGE, "to": []}, "at least one recipient"),
    ({**MESSAGE, "headers": {"From": "x@evil.test"}}, "headers: From"),
    ({**MESSAGE, "headers": {"X-Bad": "a\r\nBcc: x@evil.test"}}, "line break"),
    ({**MESSAGE, "attachments": [{"filename": "a.txt", "content": "not base64!"}]},
     "attachments[0]"),
])
def test_bad_input_is_a_422_naming_the_entry(cast, shop, body, where):
    answer = shop.post("/messages", body)
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid_message"
    assert where in answer.json()["message"]
    assert not Message.objects.exists() and not Recipient.objects.exists()


def test_another_accounts_send_key_cannot_send_as_acme_nor_read_its_messages(cast, shop):
    assert shop.post("/messages", MESSAGE).status_code == 202
    globex = ApiClient(send_key(cast.globex_smtp, name="crm sender"))
    answer = globex.post("/messages", MESSAGE)
    assert answer.status_code == 403 and answer.json()["code"] == "sender_not_authorized"
    assert cast.globex_smtp.username in answer.json()["message"]
    event = RelayEvent.objects.get()
    assert (event.account, event.smtp_user) == (cast.globex, cast.globex_smtp)
    acme_message = Message.objects.get()
    assert globex.get(f"/messages/{acme_message.pk}").status_code == 403
    globex_admin = ApiClient(key_for(cast.globex))
    assert globex_admin.get(f"/messages/{acme_message.pk}").status_code == 404
    assert globex_admin.get("/relay-events").json()["items"][0]["address"] == "shop@acme.test"
    assert ApiClient(key_for(cast.acme)).get("/relay-events").json()["items"] == []


def test_binding_a_key_to_another_accounts_smtp_user_is_refused(cast):
    with pytest.raises(ValueError, match="another account"):
        create_api_key(cast.acme, name="x", smtp_user=cast.globex_smtp)
