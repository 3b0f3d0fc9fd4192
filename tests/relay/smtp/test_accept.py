"""Accepting mail: what is stored, byte for byte, and that 250 means committed."""

from __future__ import annotations

import asyncio
import smtplib
import socket
import time

import aiosmtplib
import pytest
from django.db import DatabaseError, connection

from relay.models import EventKind, Message, Recipient, RelayEvent
from relay.smtp.accept import Submission, parse_headers, store_message
from tests.senders import authorize
from tests.smtp_relay import message

MESSAGE = (
    b"From: Shop <shop@acme.test>\r\n"
    b"To: someone@example.net\r\n"
    b"Subject: =?utf-8?Q?I love you =E2=99=A5?=\r\n"
    b"Message-ID: <1@acme.test>\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


def logged_in(relay, cast) -> smtplib.SMTP:
    smtp = smtplib.SMTP(relay.host, relay.port, timeout=10)
    smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    return smtp


def queue_id_of(reply: bytes) -> str:
    assert reply.startswith(b"2.0.0 Ok: queued as "), reply
    return reply.decode().rsplit(" ", 1)[1]


def test_it_queues_an_authorized_message_and_says_its_id(relay, cast):
    with logged_in(relay, cast) as smtp:
        smtp.mail("shop@acme.test")
        smtp.rcpt("a@example.net")
        smtp.rcpt("b@example.net")
        code, reply = smtp.data(MESSAGE)
    assert code == 250
    message = Message.objects.get(queue_id=queue_id_of(reply))
    assert message.smtp_user == cast.acme_smtp
    assert message.account == cast.acme
    assert message.envelope_from == "shop@acme.test"
    assert message.header_from == "Shop <shop@acme.test>"
    assert message.subject == "I love you \u2665"
    assert message.message_id == "<1@acme.test>"
    assert message.client_ip == "127.0.0.1"
    assert message.port == relay.port
    recipients = Recipient.objects.filter(message=message).order_by("address")
    assert [(r.address, r.status, r.account_id, r.priority) for r in recipients] == [
        ("a@example.net", "queued", cast.acme.pk, 3), ("b@example.net", "queued", cast.acme.pk, 3),
    ]


def test_it_keeps_the_raw_bytes_and_adds_one_received_header(relay, cast):
    body = "Gr\u00fc\u00dfe, \u00e7a va? \u2665\r\n..leading dot kept\r\n".encode()
    raw = MESSAGE.replace(b"Hello.\r\n", body)
    with logged_in(relay, cast) as smtp:
        smtp.ehlo("client.example")
        smtp.mail("shop@acme.test", ["BODY=8BITMIME"])
        smtp.rcpt("a@example.net")
        code, reply = smtp.data(raw)
    assert code == 250
    queue_id = queue_id_of(reply)
    stored = bytes(Message.objects.get(queue_id=queue_id).raw)
    received, rest = stored.split(b"\r\n\t(authenticated", 1)[0], stored
    assert rest.endswith(raw)
    head = rest[: len(rest) - len(raw)].decode()
    assert head.count("Received:") == 1
    assert head.startswith("Received: from client.example ([127.0.0.1])\r\n")
    assert f"by relay.test (SMTP+) with ESMTPA id {queue_id}" in head
    assert f"(authenticated as {cast.acme_smtp.username});" in head
    assert received


def test_it_accepts_an_smtputf8_sender_and_recipient(relay, cast):
    authorize(cast.acme_smtp, "xn--bcher-kva.test")  # bücher.test
    raw = "From: B\u00fccher <verkauf@b\u00fccher.test>\r\nSubject: B\u00fccher\r\n\r\nHi\r\n".encode()

    async def send() -> tuple[int, str]:
        async with aiosmtplib.SMTP(hostname=relay.host, port=relay.port, timeout=10) as smtp:
            await smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
            errors, reply = await smtp.sendmail(
                "verkauf@b\u00fccher.test", ["j\u00fcrgen@example.net"], raw,
                mail_options=["SMTPUTF8", "BODY=8BITMIME"],
            )
            assert errors == {}
            return 250, reply

    _, reply = asyncio.run(send())
    message = Message.objects.get(queue_id=reply.rsplit(" ", 1)[1])
    assert message.envelope_from == "verkauf@b\u00fccher.test"
    assert message.smtputf8 is True
    assert message.subject == "B\u00fccher"
    assert bytes(message.raw).endswith(raw)
    assert message.recipients.get().address == "j\u00fcrgen@example.net"


def test_a_kept_open_session_can_send_many_messages(relay, cast):
    with logged_in(relay, cast) as smtp:
        for n in range(5):
            assert smtp.sendmail("shop@acme.test", [f"r{n}@example.net"], message()) == {}
    assert Recipient.objects.count() == 5


def test_the_commit_survives_a_client_that_hangs_up_after_the_final_dot(relay, cast):
    import base64

    blob = base64.b64encode(f"\0{cast.acme_smtp.username}\0{cast.acme_smtp_password}".encode())
    with socket.create_connection((relay.host, relay.port), timeout=5) as sock:
        sock.sendall(b"EHLO c\r\n")
        time.sleep(0.1)
        for line in [b"AUTH PLAIN " + blob, b"MAIL FROM:<shop@acme.test>",
                     b"RCPT TO:<a@example.net>", b"DATA"]:
            sock.sendall(line + b"\r\n")
            time.sleep(0.1)
        sock.sendall(message() + b".\r\n")
    deadline = time.monotonic() + 5
    while not Recipient.objects.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert Message.objects.get().recipients.count() == 1


def submission(cast, recipients: list[str]) -> Submission:
    raw = message()
    return Submission(
        account_id=cast.acme.pk, smtp_user_id=cast.acme_smtp.pk, username=cast.acme_smtp.username,
        priority=1, envelope_from="shop@acme.test", recipients=recipients, raw=raw,
        client_ip="192.0.2.7", client_helo="app.acme.test", port=587, tls=True,
        headers=parse_headers(raw),
    )


@pytest.mark.django_db
def test_store_message_commits_the_message_and_a_recipient_per_rcpt(cast):
    queue_id = store_message(submission(cast, ["a@example.net", "b@example.net"]), "mx.test")
    message = Message.objects.get(queue_id=queue_id)
    assert message.recipients.count() == 2
    assert set(message.recipients.values_list("priority", flat=True)) == {1}
    assert bytes(message.raw).startswith(b"Received: from app.acme.test ([192.0.2.7])\r\n"
                                         b"\tby mx.test (SMTP+) with ESMTPSA id " + queue_id.encode())


class recipient_table_gone:
    """The recipient table disappears (as in a broken database) until the block ends."""

    def __enter__(self) -> None:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE relay_recipient RENAME TO relay_recipient_away")

    def __exit__(self, *exc: object) -> None:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE relay_recipient_away RENAME TO relay_recipient")


@pytest.mark.django_db(transaction=True)
def test_store_message_leaves_nothing_behind_when_the_recipients_cannot_be_written(cast):
    with recipient_table_gone(), pytest.raises(DatabaseError):
        store_message(submission(cast, ["a@example.net"]), "mx.test")
    assert not Message.objects.exists()


def test_it_answers_451_never_250_when_the_database_cannot_store(relay, cast):
    with logged_in(relay, cast) as smtp:
        smtp.mail("shop@acme.test")
        smtp.rcpt("a@example.net")
        with recipient_table_gone():
            code, reply = smtp.data(message())
        assert (code, reply) == (451, b"4.3.0 Could not store the message, try again later")
        assert not Message.objects.exists()
        # Once the database is back, the same session can send.
        assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
    relay.flush()
    assert RelayEvent.objects.filter(kind=EventKind.STORE_FAILED).exists()
