"""End to end: a client sends through the real relay, the delivery worker meets an
upstream answering `550 5.1.1 User unknown`, and the alert sender puts an email in
Django's outbox that says what failed and what to do. Every part is real: SMTP sockets,
the relay, the queue, the delivery worker, the account's default alert rule."""

from __future__ import annotations

import smtplib

import pytest
from django.core import mail

from alerts.models import AlertRule, Notification
from alerts.sending import run_once
from relay.delivery.worker import deliver_due
from relay.models import Message, Recipient
from tests.alerts.conftest import backdate, later, make_rule
from tests.smtp_relay import message

pytestmark = pytest.mark.django_db(transaction=True)

ENCODED_SUBJECT = "=?utf-8?Q?Commande_=E2=99=A5_<b>n=C2=B012</b>?="
DECODED_SUBJECT = "Commande ♥ <b>n°12</b>"


def send(relay, cast, sender: str, to: str, subject: str = "Hello", body: bytes = b"Hello.\r\n") -> None:
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        smtp.sendmail(sender, [to], message(from_=sender, to=to, subject=subject, body=body))


def test_a_real_550_user_unknown_reaches_the_owner_as_an_explained_alert(relay, upstream, cast):
    # Acme got its default rule when it was created (owner alice, failures and expiries).
    rule = backdate(AlertRule.objects.get(account=cast.acme))
    assert rule.email_list == ["alice@acme.test"]
    upstream.replies["ghost@example.net"] = "550 5.1.1 User unknown"

    send(relay, cast, "shop@acme.test", "ghost@example.net", ENCODED_SUBJECT,
         body=b"Top secret body line.\r\n")
    stats = deliver_due(upstream=upstream.url())
    assert stats["failed"] == 1
    rcpt = Recipient.objects.get(address="ghost@example.net")
    assert (rcpt.status, rcpt.last_code, rcpt.last_enhanced) == ("failed", 550, "5.1.1")

    assert run_once(now=later()) == 1

    [email] = mail.outbox
    assert email.to == ["alice@acme.test"]
    assert email.subject == (
        "[SMTP+] 1 message could not be delivered (Acme) — recipient mailbox does not exist"
    )
    text, html = email.body, email.alternatives[0][0]
    for expected in (
        "SMTP+ user:      Acme web shop (" + cast.acme_smtp.username + ")",
        "Sender:          shop@acme.test",
        "Recipient:       ghost@example.net",
        "Subject:         " + DECODED_SUBJECT,
        "Attempts:        1",
        "Upstream reply:  550 5.1.1 User unknown",
        "The recipient's mail server says this mailbox does not exist.",
        "Check the recipient address for typos.",
    ):
        assert expected in text, expected
    assert "Queued:          " + Message.objects.exclude(envelope_from="").get().created.strftime("%Y-%m-%d %H:%M") in text
    assert "Commande ♥ &lt;b&gt;n°12&lt;/b&gt;" in html and "<b>n°12</b>" not in html
    assert "https://console.example.com/" in text and "/messages/" in text
    for part in (email.subject, text, html):
        assert cast.acme_smtp_password not in part
        assert "Top secret body line" not in part

    # Running again (or in another worker) sends nothing more for the same failure.
    assert run_once(now=later(600)) == 0
    assert Notification.objects.get().status == "sent"


def test_a_real_sender_rejection_alerts_with_the_authorize_the_domain_advice(relay, cast):
    make_rule(cast.acme, events=["sender_rejected"], email_recipients="ops@acme.test")
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            smtp.sendmail("news@www.acme-news.test", ["someone@example.net"], message())
    assert refused.value.smtp_code == 550
    relay.flush()  # relay events are written in batches

    run_once(now=later())
    [email] = [m for m in mail.outbox if m.to == ["ops@acme.test"]]
    assert email.subject == "[SMTP+] 1 sender refused as not authorized (Acme) — sender not authorized"
    assert "news@www.acme-news.test" in email.body
    assert "authorize the domain acme-news.test" in email.body
    assert "not www.acme-news.test" in email.body
