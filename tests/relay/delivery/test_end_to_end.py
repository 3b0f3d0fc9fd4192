"""The whole path: a client sends through our relay, a worker delivers to the upstream."""

from __future__ import annotations

import asyncio
import email
import email.policy
import smtplib

import aiosmtplib
import pytest

from relay.delivery.worker import deliver_due
from relay.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_raw_utf8_subject_sent_through_the_relay_reaches_an_ascii_only_upstream(
    relay, cast, upstream
):
    upstream.smtputf8 = False
    raw = (
        "From: Jörg <shop@acme.test>\r\nTo: bob@example.net\r\n"
        "Subject: I love you ♥\r\n\r\nHello.\r\n"
    ).encode()

    async def send() -> str:
        async with aiosmtplib.SMTP(hostname=relay.host, port=relay.port, timeout=10) as smtp:
            await smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
            _, reply = await smtp.sendmail(
                "shop@acme.test", ["bob@example.net"], raw, mail_options=["SMTPUTF8"]
            )
            return reply

    queue_id = asyncio.run(send()).rsplit(" ", 1)[1]
    deliver_due(upstream=upstream.url())

    message = Message.objects.get(queue_id=queue_id)
    assert message.recipients.get().status == "delivered"
    [got] = upstream.received
    assert got.header_bytes.isascii()
    parsed = email.message_from_bytes(got.data, policy=email.policy.default)
    assert parsed["Subject"] == "I love you ♥"
    assert f"id {queue_id}" in " ".join(parsed["Received"].split())


def test_the_seeds_encoded_subject_goes_out_as_the_client_wrote_it(relay, cast, upstream):
    raw = (
        b"From: shop@acme.test\r\nTo: bob@example.net\r\n"
        b"Subject: =?utf-8?Q?I love you =E2=99=A5?=\r\n\r\nHello.\r\n"
    )
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        smtp.sendmail("shop@acme.test", ["bob@example.net"], raw)

    deliver_due(upstream=upstream.url())

    [got] = upstream.received
    assert got.data.endswith(raw)
    assert Message.objects.get().subject == "I love you ♥"
