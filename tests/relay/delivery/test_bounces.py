"""Delivery status notifications through real SMTP: a client sends through our relay, a
recording upstream refuses some recipients, and the report that reaches the upstream
(from the null sender) is read back with the `email` package."""

from __future__ import annotations

import email
import email.policy
import smtplib
from datetime import timedelta
from email.message import EmailMessage
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from relay.delivery.worker import deliver_due
from relay.models import (
    DsnMode,
    DsnRecord,
    DsnSettings,
    EventKind,
    Message,
    Recipient,
    RelayEvent,
    Suppression,
)

pytestmark = pytest.mark.django_db(transaction=True)

RAW = (
    b"From: Shop <shop@acme.test>\r\nTo: customers@example.net\r\nSubject: Your order\r\n"
    b"Message-ID: <order-1@acme.test>\r\n\r\nThank you.\r\n"
)


def send(relay, cast, rcpts, mail_options=(), raw=RAW) -> tuple[str, list[tuple[int, str]]]:  # noqa: ANN001
    """Send one message (recipient → its RCPT options); its queue id and the RCPT replies."""
    replies = []
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        code, text = smtp.mail("shop@acme.test", list(mail_options))
        assert code == 250, text
        for address, options in rcpts.items():
            code, text = smtp.rcpt(address, list(options))
            replies.append((code, text.decode()))
        if not any(code == 250 for code, _ in replies):
            return "", replies
        code, text = smtp.data(raw)
        assert code == 250, text
    return text.decode().rsplit(" ", 1)[1], replies


def reports(upstream) -> list[EmailMessage]:  # noqa: ANN001
    return [
        email.message_from_bytes(m.data, policy=email.policy.default)  # type: ignore[misc]
        for m in upstream.received if m.mail_from == ""
    ]


def status_blocks(report: EmailMessage) -> list[dict[str, str]]:
    [part] = [p for p in report.walk() if p.get_content_type() == "message/delivery-status"]
    return [dict(block.items()) for block in part.get_payload()]


def test_a_refused_recipient_gets_its_sender_one_report_with_every_rfc3464_field(
    relay, cast, upstream
):
    upstream.replies["gone@example.net"] = "550 5.1.1 <gone@example.net>: No such user"
    upstream.replies["full@example.net"] = "552 5.2.2 Mailbox full"
    queue_id, _ = send(relay, cast, {
        "ok@example.net": [], "gone@example.net": ["ORCPT=rfc822;Gone@example.net"],
        "full@example.net": [],
    }, mail_options=["ENVID=order+2B1"])
    deliver_due(upstream=upstream.url())
    deliver_due(upstream=upstream.url())

    [report] = reports(upstream)
    [dsn_row] = Message.objects.filter(envelope_from="")
    assert dsn_row.dsn_of.queue_id == queue_id
    [got] = [m for m in upstream.received if m.mail_from == ""]
    assert got.rcpt_tos == ["shop@acme.test"]
    assert report["To"] == "shop@acme.test"
    assert report["Auto-Submitted"] == "auto-replied"
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    human, status, headers = report.iter_parts()
    text = human.get_content()
    assert "<gone@example.net>" in text and "<full@example.net>" in text
    assert "ok@example.net" not in text
    assert "mailbox does not exist" in text
    assert "550 5.1.1 <gone@example.net>: No such user" in text
    head, gone, full = status_blocks(report)
    assert head["Reporting-MTA"] == "dns; localhost"
    assert head["Original-Envelope-Id"] == "order+1"
    assert head["Arrival-Date"]
    assert gone["Final-Recipient"] == "rfc822; gone@example.net"
    assert gone["Original-Recipient"] == "rfc822;Gone@example.net"
    assert gone["Action"] == "failed"
    assert gone["Status"] == "5.1.1"
    assert gone["Remote-MTA"] == "dns; 127.0.0.1"
    assert gone["Diagnostic-Code"] == "smtp; 550 5.1.1 <gone@example.net>: No such user"
    assert gone["Last-Attempt-Date"]
    assert full["Status"] == "5.2.2" and "Original-Recipient" not in full
    assert headers.get_content_type() == "text/rfc822-headers"
    assert "Message-ID: <order-1@acme.test>" in headers.get_content()
    records = DsnRecord.objects.filter(dsn=dsn_row).values_list("recipient__address", flat=True)
    assert sorted(records) == ["full@example.net", "gone@example.net"]


def test_ret_full_returns_the_whole_message(relay, cast, upstream):
    upstream.replies["gone@example.net"] = "550 5.1.1 No such user"
    send(relay, cast, {"gone@example.net": []}, mail_options=["RET=FULL"])
    deliver_due(upstream=upstream.url())
    deliver_due(upstream=upstream.url())
    [report] = reports(upstream)
    attached = list(report.iter_parts())[2]
    assert attached.get_content_type() == "message/rfc822"
    inner = attached.get_content()
    assert inner["Subject"] == "Your order"
    assert inner.get_content().strip() == "Thank you."


def test_no_report_is_ever_written_about_a_report(relay, cast, upstream):
    upstream.replies["gone@example.net"] = "550 5.1.1 No such user"
    upstream.replies["shop@acme.test"] = "550 5.1.1 No such user"  # the sender is gone too
    send(relay, cast, {"gone@example.net": []})
    for _ in range(3):
        deliver_due(upstream=upstream.url())
    [dsn_row] = Message.objects.filter(envelope_from="")
    assert dsn_row.recipients.get().status == "failed"
    assert Message.objects.count() == 2
    assert reports(upstream) == []


def test_the_report_survives_an_upstream_outage(relay, cast, upstream):
    upstream.replies["gone@example.net"] = "550 5.1.1 No such user"
    upstream.replies["shop@acme.test"] = ["451 4.3.0 Busy", "250 2.1.5 Ok"]
    send(relay, cast, {"gone@example.net": []})
    deliver_due(upstream=upstream.url())
    report_rcpt = Recipient.objects.get(message__envelope_from="")
    url = upstream.url()
    upstream.down()
    Recipient.objects.filter(pk=report_rcpt.pk).update(next_attempt_at=timezone.now())
    deliver_due(upstream=url)
    report_rcpt.refresh_from_db()
    assert report_rcpt.status == "deferred"
    assert report_rcpt.last_reason == "connect_failed"
    upstream.up()
    Recipient.objects.filter(pk=report_rcpt.pk).update(next_attempt_at=timezone.now())
    deliver_due(upstream=url)
    assert len(reports(upstream)) == 1
    report_rcpt.refresh_from_db()
    assert report_rcpt.status == "delivered"


def test_notify_never_and_notify_success_are_honoured(relay, cast, upstream):
    upstream.replies["gone@example.net"] = "550 5.1.1 No such user"
    send(relay, cast, {"gone@example.net": ["NOTIFY=NEVER"], "ok@example.net": ["NOTIFY=SUCCESS"]})
    deliver_due(upstream=upstream.url())
    deliver_due(upstream=upstream.url())
    [report] = reports(upstream)
    assert report["Subject"] == "Successful Mail Delivery Report"
    [_, ok] = status_blocks(report)
    assert ok["Final-Recipient"] == "rfc822; ok@example.net"
    assert ok["Action"] == "relayed"  # the upstream offers no DSN: it will not report
    never = DsnRecord.objects.get(recipient__address="gone@example.net")
    assert never.dsn is None and "NOTIFY=NEVER" in never.note


def test_dsn_parameters_go_on_to_an_upstream_that_offers_dsn_and_it_reports_success(
    relay, cast, upstream
):
    upstream.dsn = True
    send(relay, cast, {"ok@example.net": ["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;OK@example.net"]},
         mail_options=["RET=HDRS", "ENVID=abc"])
    deliver_due(upstream=upstream.url())
    deliver_due(upstream=upstream.url())
    assert sorted(upstream.dsn_params["MAIL"]) == ["ENVID=abc", "RET=HDRS"]
    assert upstream.dsn_params["ok@example.net"] == [
        "NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;OK@example.net"]
    assert reports(upstream) == []  # the upstream took the request over
    rcpt = Recipient.objects.get(address="ok@example.net")
    assert (rcpt.notify, rcpt.orcpt) == ("SUCCESS,FAILURE", "rfc822;OK@example.net")


def test_a_user_can_send_reports_elsewhere_or_nowhere(relay, cast, upstream):
    upstream.replies["gone@example.net"] = "550 5.1.1 No such user"
    DsnSettings.objects.create(smtp_user=cast.acme_smtp, mode=DsnMode.ADDRESS,
                               address="it@acme.test")
    send(relay, cast, {"gone@example.net": []})
    deliver_due(upstream=upstream.url())
    deliver_due(upstream=upstream.url())
    [got] = [m for m in upstream.received if m.mail_from == ""]
    assert got.rcpt_tos == ["it@acme.test"]

    DsnSettings.objects.filter(smtp_user=cast.acme_smtp).update(mode=DsnMode.OFF)
    Suppression.objects.all().delete()
    send(relay, cast, {"gone@example.net": []})
    deliver_due(upstream=upstream.url())
    deliver_due(upstream=upstream.url())
    assert len(reports(upstream)) == 1
    assert DsnRecord.objects.filter(dsn=None, note__contains="off").count() == 1


def test_reports_to_one_sender_are_rate_limited(relay, cast, upstream, settings):
    settings.DSN_RATE_LIMIT = 1
    upstream.replies["a@example.net"] = "550 5.7.1 blocked"
    for _ in range(2):
        send(relay, cast, {"a@example.net": []})
    deliver_due(upstream=upstream.url())
    deliver_due(upstream=upstream.url())
    assert len(reports(upstream)) == 1
    assert DsnRecord.objects.filter(dsn=None, note__startswith="rate limit").count() == 1


def test_an_expired_recipient_is_reported_as_failed_with_4_4_7(relay, cast, upstream, settings):
    upstream.replies["slow@example.net"] = "451 4.3.0 Try later"
    send(relay, cast, {"slow@example.net": []})
    Message.objects.update(created=timezone.now() - timedelta(days=6))
    deliver_due(upstream=upstream.url())
    deliver_due(upstream=upstream.url())
    [report] = reports(upstream)
    [_, slow] = status_blocks(report)
    assert (slow["Action"], slow["Status"]) == ("failed", "4.4.7")
    assert not Suppression.objects.exists()  # a temporary failure says nothing of the address


def test_one_delay_warning_once_a_recipient_has_waited_the_configured_hours(
    relay, cast, upstream, settings
):
    settings.DSN_DELAY_WARNING_HOURS = 4
    upstream.replies["slow@example.net"] = "451 4.3.0 Try later"
    send(relay, cast, {"slow@example.net": []})
    deliver_due(upstream=upstream.url())
    Message.objects.update(created=timezone.now() - timedelta(hours=5))
    Recipient.objects.update(created=timezone.now() - timedelta(hours=5))
    for _ in range(3):
        Recipient.objects.filter(status="deferred").update(next_attempt_at=timezone.now())
        deliver_due(upstream=upstream.url())
    [report] = reports(upstream)
    assert report["Subject"] == "Delayed Mail (still being retried)"
    [_, slow] = status_blocks(report)
    assert (slow["Action"], slow["Status"]) == ("delayed", "4.3.0")


def test_no_delay_warning_for_a_recipient_whose_notify_leaves_delay_out(
    relay, cast, upstream, settings
):
    settings.DSN_DELAY_WARNING_HOURS = 4
    upstream.replies["slow@example.net"] = "451 4.3.0 Try later"
    send(relay, cast, {"slow@example.net": ["NOTIFY=FAILURE"]})
    Message.objects.update(created=timezone.now() - timedelta(hours=5))
    Recipient.objects.update(created=timezone.now() - timedelta(hours=5))
    deliver_due(upstream=upstream.url())
    deliver_due(upstream=upstream.url())
    assert reports(upstream) == []
    assert Recipient.objects.get().status == "deferred"


def test_delay_warnings_are_off_by_default(relay, cast, upstream):
    upstream.replies["slow@example.net"] = "451 4.3.0 Try later"
    send(relay, cast, {"slow@example.net": []})
    Message.objects.update(created=timezone.now() - timedelta(hours=30))
    Recipient.objects.update(created=timezone.now() - timedelta(hours=30))
    deliver_due(upstream=upstream.url())
    deliver_due(upstream=upstream.url())
    assert reports(upstream) == []


def test_a_mailbox_level_failure_suppresses_the_address_and_the_next_rcpt_is_refused(
    relay, cast, upstream
):
    upstream.replies["gone@example.net"] = "550 5.1.1 No such user"
    queue_id, _ = send(relay, cast, {"gone@example.net": []})
    deliver_due(upstream=upstream.url())
    entry = Suppression.objects.get(account=cast.acme)
    assert (entry.address, entry.reason) == ("gone@example.net", "mailbox_unknown")
    assert entry.reply == "550 5.1.1 No such user"
    assert entry.message.queue_id == queue_id
    # The relay answered for this address before: its answer is dropped at its next limit
    # sync (within two sync intervals in any case, tests/relay/smtp/test_suppression_cache.py).
    relay.flush()

    _, replies = send(relay, cast, {"Gone@Example.NET": [], "ok@example.net": []})
    code, text = replies[0]
    assert code == 550
    assert text.startswith("5.1.1 <Gone@Example.NET>: recipient is on this account's "
                           "suppression list since ")
    assert "(mailbox does not exist: 550 5.1.1 No such user)" in text
    assert text.endswith("remove it in the console if the address works again")
    assert replies[1][0] == 250
    relay.flush()
    event = RelayEvent.objects.get(kind=EventKind.SUPPRESSED)
    assert event.address == "Gone@Example.NET" and event.account == cast.acme

    call_command("suppression", "remove", "--account", cast.acme.slug, "gone@example.net",
                 stdout=StringIO())
    relay.flush()
    _, replies = send(relay, cast, {"gone@example.net": []})
    assert replies[0][0] == 250


def test_a_policy_refusal_never_suppresses(relay, cast, upstream):
    upstream.replies["a@example.net"] = "550 5.7.1 Service unavailable; client host blocked"
    send(relay, cast, {"a@example.net": []})
    deliver_due(upstream=upstream.url())
    assert not Suppression.objects.exists()
    _, replies = send(relay, cast, {"a@example.net": []})
    assert replies[0][0] == 250


def test_another_accounts_suppression_does_not_refuse(relay, cast, upstream):
    Suppression.objects.create(account=cast.globex, address="gone@example.net",
                               reason="manual")
    _, replies = send(relay, cast, {"gone@example.net": []})
    assert replies[0][0] == 250


def test_an_expired_suppression_no_longer_refuses(relay, cast, upstream):
    Suppression.objects.create(account=cast.acme, address="gone@example.net", reason="manual",
                               expires=timezone.now() - timedelta(minutes=1))
    _, replies = send(relay, cast, {"gone@example.net": []})
    assert replies[0][0] == 250


@pytest.mark.parametrize(("label", "host"), [
    ("mx.example.net[192.0.2.1]:25", "mx.example.net"),
    ("192.0.2.1:2525", "192.0.2.1"),
    ("[2001:db8::1]:25", "2001:db8::1"),
    ("smarthost.example.net", "smarthost.example.net"),
])
def test_remote_mta_names_the_host_of_the_upstream(label, host):
    from relay.delivery.dsn import _remote_host

    assert _remote_host(label) == host
