"""Delivery to a real loopback upstream: what happens to each recipient."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta

import pytest
from django.utils import timezone

from relay.delivery.worker import deliver_due
from relay.models import Attempt, Recipient, RecipientStatus
from tests.fake_upstream import FakeUpstream, queue_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _schedule(settings):
    settings.DELIVERY_RETRY_FIRST = 300
    settings.DELIVERY_RETRY_MAX = 3600
    settings.DELIVERY_LIFETIME = 5 * 24 * 3600


def make_due(*recipients: Recipient) -> None:
    for r in recipients:
        Recipient.objects.filter(pk=r.pk).update(next_attempt_at=timezone.now())


def test_it_delivers_a_message_and_records_the_upstreams_reply(cast, upstream: FakeUpstream):
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    stats = deliver_due(upstream=upstream.url())

    assert stats["delivered"] == 1
    [got] = upstream.received
    assert got.mail_from == "shop@acme.test"
    assert got.rcpt_tos == ["bob@example.net"]
    assert b"Subject: Your order" in got.data
    rcpt = message.recipients.get()
    assert rcpt.status == RecipientStatus.DELIVERED
    assert rcpt.finished_at is not None
    assert (rcpt.last_code, rcpt.last_enhanced, rcpt.last_text) == (250, "2.0.0", "Ok: queued")
    assert rcpt.attempts == 1
    assert rcpt.lease_owner == "" and rcpt.lease_until is None
    [attempt] = Attempt.objects.filter(recipient=rcpt)
    assert attempt.outcome == "delivered"
    assert attempt.upstream == f"127.0.0.1:{upstream.port}"
    assert attempt.code == 250


def test_a_temporary_refusal_defers_then_the_next_attempt_delivers(cast, upstream):
    upstream.replies["bob@example.net"] = ["451 4.3.0 Mailbox busy, try later", "250 2.1.5 Ok"]
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    before = timezone.now()
    deliver_due(upstream=upstream.url())

    rcpt = message.recipients.get()
    assert rcpt.status == RecipientStatus.DEFERRED
    assert (rcpt.last_code, rcpt.last_enhanced) == (451, "4.3.0")
    assert rcpt.last_text == "Mailbox busy, try later"
    # The first retry comes DELIVERY_RETRY_FIRST later, not before.
    assert rcpt.next_attempt_at >= before + timedelta(seconds=300)
    assert rcpt.next_attempt_at <= timezone.now() + timedelta(seconds=301)
    assert deliver_due(upstream=upstream.url())["delivered"] == 0  # not due yet

    make_due(rcpt)
    deliver_due(upstream=upstream.url())

    rcpt.refresh_from_db()
    assert rcpt.status == RecipientStatus.DELIVERED
    assert rcpt.attempts == 2
    assert [a.outcome for a in rcpt.attempt_set.all()] == ["deferred", "delivered"]
    assert upstream.recipients_received() == ["bob@example.net"]


def test_the_backoff_doubles_up_to_the_maximum(cast, upstream, settings):
    settings.DELIVERY_RETRY_FIRST = 60
    settings.DELIVERY_RETRY_MAX = 200
    upstream.replies["bob@example.net"] = "421 4.4.5 Too busy"
    message = queue_message(cast.acme_smtp, ["bob@example.net"])
    waits = []
    for _ in range(4):
        start = timezone.now()
        deliver_due(upstream=upstream.url())
        rcpt = message.recipients.get()
        waits.append(round((rcpt.next_attempt_at - start).total_seconds()))
        make_due(rcpt)
    assert waits == [60, 120, 200, 200]


def test_a_permanent_refusal_fails_the_recipient_at_once(cast, upstream):
    upstream.replies["nobody@example.net"] = "550 5.1.1 No such user here"
    message = queue_message(cast.acme_smtp, ["nobody@example.net"])

    deliver_due(upstream=upstream.url())

    rcpt = message.recipients.get()
    assert rcpt.status == RecipientStatus.FAILED
    assert rcpt.fail_reason == "rejected"
    assert (rcpt.last_code, rcpt.last_enhanced, rcpt.last_text) == (
        550, "5.1.1", "No such user here",
    )
    assert rcpt.finished_at is not None
    # Only the report to the sender (from the null sender) went out, not the message.
    assert [m.mail_from for m in upstream.received] in ([], [""])


def test_mixed_recipients_get_their_own_outcome_in_one_transaction(cast, upstream):
    upstream.replies["gone@example.net"] = "550 5.1.1 No such user"
    upstream.replies["full@example.net"] = "452 4.2.2 Mailbox full"
    message = queue_message(
        cast.acme_smtp, ["ok@example.net", "gone@example.net", "full@example.net", "ok2@example.net"]
    )

    deliver_due(upstream=upstream.url())

    status = dict(message.recipients.values_list("address", "status"))
    assert status == {
        "ok@example.net": "delivered",
        "gone@example.net": "failed",
        "full@example.net": "deferred",
        "ok2@example.net": "delivered",
    }
    # One SMTP transaction carried both accepted recipients (the other is the report).
    [got] = [m for m in upstream.received if m.mail_from]
    assert got.rcpt_tos == ["ok@example.net", "ok2@example.net"]


def test_when_the_upstream_is_down_mail_waits_and_goes_out_once_it_is_back(cast, upstream):
    upstream.down()
    message = queue_message(cast.acme_smtp, ["bob@example.net", "eve@example.net"])

    deliver_due(upstream=upstream.url())

    rcpts = list(message.recipients.all())
    assert {r.status for r in rcpts} == {RecipientStatus.DEFERRED}
    assert rcpts[0].last_code is None
    assert rcpts[0].last_enhanced == "4.4.1"
    assert "Could not connect to 127.0.0.1" in rcpts[0].last_text

    upstream.up()
    make_due(*rcpts)
    deliver_due(upstream=upstream.url())

    assert set(message.recipients.values_list("status", flat=True)) == {"delivered"}
    assert sorted(upstream.recipients_received()) == ["bob@example.net", "eve@example.net"]


def test_a_hang_up_during_data_defers_the_recipient(cast, upstream):
    upstream.hang_up_at = "data"
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=upstream.url())

    rcpt = message.recipients.get()
    assert rcpt.status == RecipientStatus.DEFERRED
    assert rcpt.last_enhanced.startswith("4.")


def test_past_the_lifetime_a_deferred_recipient_fails_as_expired(cast, upstream, settings):
    settings.DELIVERY_LIFETIME = 3600
    upstream.replies["bob@example.net"] = "451 4.3.0 Try again later"
    old = timezone.now() - timedelta(minutes=50)
    message = queue_message(cast.acme_smtp, ["bob@example.net"], created=old)

    deliver_due(upstream=upstream.url())
    rcpt = message.recipients.get()
    # The next try is capped at the expiry time rather than scheduled after it.
    assert rcpt.status == RecipientStatus.DEFERRED
    assert rcpt.next_attempt_at <= old + timedelta(seconds=3600)

    Recipient.objects.filter(pk=rcpt.pk).update(next_attempt_at=timezone.now())
    message.__class__.objects.filter(pk=message.pk).update(created=old - timedelta(minutes=20))
    deliver_due(upstream=upstream.url())

    rcpt.refresh_from_db()
    assert rcpt.status == RecipientStatus.FAILED
    assert rcpt.fail_reason == "expired"
    assert rcpt.last_code == 451
    assert rcpt.attempts == 2


def test_a_raw_utf8_subject_is_encoded_for_an_upstream_without_smtputf8(cast, upstream):
    upstream.smtputf8 = False
    raw = (
        "From: Jörg Müller <shop@acme.test>\r\nTo: bob@example.net\r\n"
        "Subject: I love you ♥\r\n\r\nHello.\r\n"
    ).encode()
    message = queue_message(cast.acme_smtp, ["bob@example.net"], raw=raw, smtputf8=True)

    deliver_due(upstream=upstream.url())

    assert message.recipients.get().status == RecipientStatus.DELIVERED
    [got] = upstream.received
    assert got.header_bytes.isascii()
    assert "SMTPUTF8" not in got.mail_options
    parsed = email.message_from_bytes(got.data, policy=email.policy.default)
    assert parsed["Subject"] == "I love you ♥"
    assert str(parsed["From"]) == "Jörg Müller <shop@acme.test>"


def test_an_upstream_with_smtputf8_gets_the_message_unchanged(cast, upstream):
    raw = "From: shop@acme.test\r\nSubject: I love you ♥\r\n\r\nHello.\r\n".encode()
    queue_message(cast.acme_smtp, ["bob@example.net"], raw=raw)

    deliver_due(upstream=upstream.url())

    [got] = upstream.received
    assert got.data == raw
    assert "SMTPUTF8" in got.mail_options


def test_a_non_ascii_address_fails_with_a_reply_that_says_why(cast, upstream):
    upstream.smtputf8 = False
    raw = b"From: shop@acme.test\r\nTo: bob@example.net\r\nSubject: Hi\r\n\r\nHello.\r\n"
    message = queue_message(cast.acme_smtp, ["zoë@example.net", "bob@example.net"], raw=raw)

    deliver_due(upstream=upstream.url())

    zoe = message.recipients.get(address="zoë@example.net")
    assert zoe.status == RecipientStatus.FAILED
    assert zoe.fail_reason == "smtputf8"
    assert zoe.last_enhanced == "5.6.7"
    assert "does not support SMTPUTF8" in zoe.last_text
    assert "zoë@example.net" in zoe.last_text
    assert message.recipients.get(address="bob@example.net").status == "delivered"


def test_connections_to_the_smarthost_are_reused_across_messages(cast, upstream):
    for i in range(12):
        queue_message(cast.acme_smtp, [f"user{i}@example.net"])

    stats = deliver_due(upstream=upstream.url(), batch_size=3)

    assert stats["delivered"] == 12
    assert len(upstream.received) == 12
    assert upstream.connections == 1


def test_a_smarthost_login_is_used_when_the_url_has_credentials(cast, upstream):
    upstream.auth = ("relayuser", "s3cret")
    queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=upstream.url())

    assert upstream.recipients_received() == ["bob@example.net"]


def test_wrong_smarthost_credentials_defer_rather_than_fail(cast, upstream):
    upstream.auth = ("relayuser", "s3cret")
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=f"smtp://relayuser:wrong@127.0.0.1:{upstream.port}")

    rcpt = message.recipients.get()
    assert rcpt.status == RecipientStatus.DEFERRED
    assert rcpt.last_code == 535


def test_the_development_default_writes_delivered_mail_to_a_maildir(cast, tmp_path):
    import mailbox

    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=f"maildir:{tmp_path / 'mail'}")

    assert message.recipients.get().status == RecipientStatus.DELIVERED
    [stored] = list(mailbox.Maildir(tmp_path / "mail"))
    assert stored["Subject"] == "Your order"
    assert stored["Return-Path"] == "<shop@acme.test>"
    assert stored["Delivered-To"] == "bob@example.net"
