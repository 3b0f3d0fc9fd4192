"""The send API decides exactly as the relay: one table of envelope senders and headers,
sent through a real relay with smtplib and through the API, gives the same decisions,
the same reply texts and the same relay events."""

from __future__ import annotations

import smtplib
from urllib.parse import urlencode

import pytest
from django.test import Client

from accounts.actions.api_keys import create_api_key
from accounts.audit import Actor
from relay import suppressions
from relay.models import Message, RelayEvent
from tests.senders import authorize_email

RCPT = "someone@example.net"

# (envelope sender, header block) → the same decision either way.
CASES = [
    ("shop@acme.test", "From: shop@acme.test\r\n"),
    ("Shop@ACME.test", "From: Acme Shop <SHOP@acme.TEST>\r\n"),
    ("ceo@evil.test", "From: shop@acme.test\r\n"),
    ("shop@acme.test", "From: boss@evil.test\r\n"),
    ("shop@acme.test", "From: shop@acme.test, boss@evil.test\r\n"),
    ("shop@acme.test", "From: shop@acme.test\r\nSender: relay@evil.test\r\n"),
    ("shop@sub.acme.test", "From: shop@sub.acme.test\r\n"),
    ("shop@acme.test.evil.net", "From: shop@acme.test\r\n"),
    ("shop@evil-acme.test", "From: shop@acme.test\r\n"),
    ("partner@partner.test", "From: partner@partner.test\r\n"),
    ("other@partner.test", "From: other@partner.test\r\n"),
    # Authorized, but not owned: an address whose link was not followed, a domain the
    # account has not verified.
    ("pending@partner.test", "From: pending@partner.test\r\n"),
    ("shop@unverified.test", "From: shop@unverified.test\r\n"),
    ("shop@acme.test", "Subject: no author\r\n"),
    ("shop@acme.test", "From: not an address\r\n"),
    ("shop@acme.test", "From: shop@acme.test\r\nFrom: boss@evil.test\r\n"),
    ("shop@acme.test", 'From: "shop@acme.test" <boss@evil.test>\r\n'),
    ("no-at-sign", "From: shop@acme.test\r\n"),
    ("", "From: shop@acme.test\r\n"),
]


def raw_message(head: str) -> bytes:
    return (head + f"To: {RCPT}\r\nSubject: parity\r\n\r\nHello.\r\n").encode()


def by_smtp(relay, cast, sender: str, raw: bytes) -> str:
    """'accepted' or the relay's reply as 'code text'."""
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        try:
            smtp.sendmail(sender, [RCPT], raw)
        except smtplib.SMTPSenderRefused as exc:
            return f"{exc.smtp_code} {exc.smtp_error.decode()}"
        except smtplib.SMTPDataError as exc:
            return f"{exc.smtp_code} {exc.smtp_error.decode()}"
    return "accepted"


def by_api(key: str, sender: str, raw: bytes) -> str:
    client = Client(REMOTE_ADDR="127.0.0.1")
    query = urlencode({"from": sender, "to": RCPT})
    answer = client.post(f"/api/v1/messages/raw?{query}", raw, content_type="message/rfc822",
                         headers={"Authorization": f"Bearer {key}"})
    if answer.status_code == 202:
        return "accepted"
    return answer.json()["smtp_reply"]


def events() -> list[tuple[str, str, str, str, int | None]]:
    found = list(RelayEvent.objects.values_list("kind", "reason", "address", "reply",
                                                "smtp_user_id"))
    RelayEvent.objects.all().delete()
    return found


def test_the_same_senders_and_headers_get_the_same_decisions_by_smtp_and_by_api(relay, cast):
    authorize_email(cast.acme_smtp, "partner@partner.test")
    cast.acme_smtp.authorized_emails.create(email="pending@partner.test")  # not confirmed
    cast.acme_smtp.authorized_domains.create(domain="unverified.test")  # not owned
    _, key = create_api_key(cast.acme, name="parity", smtp_user=cast.acme_smtp)
    accepted = 0
    for sender, head in CASES:
        raw = raw_message(head)
        smtp_decision = by_smtp(relay, cast, sender, raw)
        relay.flush()
        smtp_events = events()
        api_decision = by_api(key, sender, raw)
        api_events = events()
        assert smtp_decision == api_decision, (sender, head)
        assert smtp_events == api_events, (sender, head)
        accepted += smtp_decision == "accepted"
    # Both ways queued the same messages; refusals and acceptances were both exercised.
    assert accepted == 3
    assert Message.objects.count() == 2 * accepted
    assert len(CASES) - accepted >= 10


@pytest.mark.parametrize("author", ["shop@acme.test", "Shop <shop@acme.test>",
                                    "ceo@evil.test", "Evil <shop@acme.test.evil.net>"])
def test_a_json_message_gets_the_decision_of_the_same_message_by_smtp(relay, cast, author):
    _, key = create_api_key(cast.acme, name="parity", smtp_user=cast.acme_smtp)
    address = author.split("<")[-1].rstrip(">")
    smtp_decision = by_smtp(relay, cast, address, raw_message(f"From: {author}\r\n"))
    client = Client(REMOTE_ADDR="127.0.0.1")
    answer = client.post("/api/v1/messages", {"from": author, "to": [RCPT], "text": "Hello."},
                         content_type="application/json",
                         headers={"Authorization": f"Bearer {key}"})
    api_decision = "accepted" if answer.status_code == 202 else answer.json()["smtp_reply"]
    assert smtp_decision == api_decision


@pytest.mark.parametrize("relay", [{"RELAY_MAX_RECIPIENTS": 2}], indirect=True)
@pytest.mark.parametrize("recipients", [["ok@example.net", "no-domain"],
                                        ["a@example.net", "b@example.net", "c@example.net"],
                                        ["ok@example.net", "gone@example.net"]])
def test_a_recipient_smtp_refuses_gets_its_reply_and_the_api_queues_nothing(
        relay, cast, recipients, settings):
    settings.RELAY_MAX_RECIPIENTS = 2  # the API's limit, as the relay's above
    suppressions.add(cast.acme, "gone@example.net", Actor.system("test"))
    _, key = create_api_key(cast.acme, name="parity", smtp_user=cast.acme_smtp)
    raw = raw_message("From: shop@acme.test\r\n")
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        refused = smtp.sendmail("shop@acme.test", recipients, raw)
    [(code, text)] = refused.values()
    assert code >= 400
    relay.flush()
    smtp_events = events()
    Message.objects.all().delete()  # SMTP queued it for the recipients it accepted
    query = urlencode([("from", "shop@acme.test")] + [("to", r) for r in recipients])
    answer = Client(REMOTE_ADDR="127.0.0.1").post(
        f"/api/v1/messages/raw?{query}", raw, content_type="message/rfc822",
        headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 422
    assert answer.json()["smtp_reply"] == f"{code} {text.decode()}"
    assert events() == smtp_events
    assert not Message.objects.exists()
