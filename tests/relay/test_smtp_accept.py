"""Accepting mail: the happy path over a real SMTP session, and the durable store."""

from __future__ import annotations

import smtplib

from relay.models import Message, Recipient

MESSAGE = (
    b"From: Shop <shop@acme.test>\r\n"
    b"To: someone@example.net\r\n"
    b"Subject: =?utf-8?Q?I love you =E2=99=A5?=\r\n"
    b"Message-ID: <1@acme.test>\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


def test_it_queues_an_authorized_message_and_says_its_id(relay, cast):
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        smtp.mail("shop@acme.test")
        smtp.rcpt("a@example.net")
        smtp.rcpt("b@example.net")
        code, reply = smtp.data(MESSAGE)
    assert code == 250
    assert reply.startswith(b"2.0.0 Ok: queued as ")
    queue_id = reply.decode().rsplit(" ", 1)[1]
    message = Message.objects.get(queue_id=queue_id)
    assert message.smtp_user == cast.acme_smtp
    assert message.subject == "I love you \u2665"
    assert sorted(Recipient.objects.filter(message=message).values_list("address", flat=True)) == [
        "a@example.net", "b@example.net",
    ]
