"""The message page explains a failed or deferred recipient, and each attempt, in the same
words as the alert email — from real deliveries: a client sends through the real relay,
the delivery worker meets the loopback upstream, the alert sender writes the email."""

from __future__ import annotations

import html
import re
import smtplib

import pytest
from django.core import mail
from django.urls import reverse

from alerts.models import AlertRule
from alerts.sending import run_once
from relay.delivery.worker import deliver_due
from relay.models import Message
from tests.alerts.conftest import backdate, later
from tests.smtp_relay import message as make_raw

pytestmark = pytest.mark.django_db(transaction=True)


def send(relay, cast, to: str) -> Message:  # noqa: ANN001
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        smtp.sendmail("shop@acme.test", [to], make_raw(from_="shop@acme.test", to=to))
    return Message.objects.get(recipients__address=to)


def page_text(client, message: Message) -> tuple[str, str]:  # noqa: ANN001
    body = client.get(reverse("relay:message_detail", args=[message.pk])).content.decode()
    return body, html.unescape(re.sub(r"<[^>]+>", " ", body))


def alert_lines(body: str) -> tuple[str, str]:
    means = re.search(r"What it means:\s+(.+)", body)
    todo = re.search(r"What to do:\s+(.+)", body)
    assert means and todo, body
    return means.group(1).strip(), todo.group(1).strip()


def test_the_message_page_explains_a_real_550_as_the_alert_email_does(
    relay, upstream, cast, alice_client
):
    backdate(AlertRule.objects.get(account=cast.acme))
    upstream.replies["ghost@example.net"] = "550 5.1.1 User unknown"
    message = send(relay, cast, "ghost@example.net")
    assert deliver_due(upstream=upstream.url())["failed"] == 1
    assert run_once(now=later()) == 1
    [email] = mail.outbox
    means, todo = alert_lines(email.body)
    assert means == "The recipient's mail server says this mailbox does not exist."

    body, text = page_text(alice_client, message)

    assert means in text and todo in text
    assert "Recipient mailbox does not exist" in text  # the alert subject's reason
    assert 'data-reason="rejected"' in body
    assert "Reason: rejected" not in text
    # The attempt row says it too.
    history = body[body.index('<table class="attempts">'):]
    assert '<td class="attempt-reading" data-reason="rejected">Recipient mailbox does not exist' in history


def test_the_message_page_explains_an_upstream_that_is_down(relay, upstream, cast, alice_client):
    upstream.down()
    message = send(relay, cast, "bob@example.net")
    deliver_due(upstream=upstream.url())

    body, text = page_text(alice_client, message)

    assert 'data-reason="connect_failed"' in body
    assert "Upstream server unreachable" in text
    assert "SMTP+ could not connect to the next mail server" in text
    assert "check that the upstream server is up and reachable" in text
    assert "Could not connect to 127.0.0.1" in text  # the reply as recorded, beside it
