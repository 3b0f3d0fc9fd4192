"""The console's side of bounces: the suppression list page, an SMTP+ user's delivery
report setting, the reports on the message page and in the messages log, the
troubleshooter's line about them."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from accounts.models import AuditEvent
from relay.delivery import notices
from relay.models import DsnSettings, Message, Recipient, Suppression
from relay.troubleshooter.upstream import check_upstream
from tests.conftest import login
from tests.relay.console.test_messages import fail_recipient, make_message

pytestmark = pytest.mark.django_db

PAGE = reverse("relay:suppressions")


def bounce(cast, address: str = "gone@example.net") -> tuple[Message, Message]:  # noqa: ANN001
    """A message whose recipient failed with 5.1.1, and the report SMTP+ wrote for it."""
    message = make_message(cast.acme_smtp, recipients=[(address, "failed")])
    rcpt = message.recipients.get()
    fail_recipient(rcpt)
    Recipient.objects.filter(pk=rcpt.pk).update(dsn_due=notices.DUE_FAILED)
    assert notices.write_due() == 1
    return message, Message.objects.get(dsn_of=message)


def test_the_list_shows_only_the_accounts_entries_and_searches_and_filters(client, cast):
    Suppression.objects.create(account=cast.acme, address="gone@example.net",
                               reason="mailbox_unknown", reply="550 5.1.1 No such user")
    Suppression.objects.create(account=cast.acme, address="typo@example.net", reason="manual")
    Suppression.objects.create(account=cast.globex, address="secret@globex.test", reason="manual")
    login(client, cast.alice)
    page = client.get(PAGE).content.decode()
    assert "gone@example.net" in page and "typo@example.net" in page
    assert "secret@globex.test" not in page
    assert "typo@" not in client.get(PAGE, {"q": "gone"}).content.decode()
    filtered = client.get(PAGE, {"reason": "manual"}).content.decode()
    assert "typo@example.net" in filtered and "gone@example.net" not in filtered


def test_an_admin_adds_and_removes_an_address_and_both_are_audited(client, cast):
    login(client, cast.bob)
    response = client.post(reverse("relay:suppressions_add"),
                           {"address": "Typo@Example.net", "note": "wrong address"})
    assert response.status_code == 302
    entry = Suppression.objects.get(account=cast.acme)
    assert (entry.address, entry.reason, entry.note) == ("typo@example.net", "manual", "wrong address")
    client.post(reverse("relay:suppressions_remove"), {"address": "typo@example.net"})
    assert not Suppression.objects.exists()
    assert set(AuditEvent.objects.values_list("action", flat=True)) >= {
        "suppression.added", "suppression.removed"}


def test_a_bad_address_is_refused_with_a_message_naming_it(client, cast):
    login(client, cast.bob)
    response = client.post(reverse("relay:suppressions_add"), {"address": "nope"}, follow=True)
    assert "&#x27;nope&#x27; is not an email address" in response.content.decode()
    assert not Suppression.objects.exists()


def test_an_admin_cannot_remove_another_accounts_entry(client, cast):
    Suppression.objects.create(account=cast.globex, address="secret@globex.test", reason="manual")
    login(client, cast.alice)
    client.post(reverse("relay:suppressions_remove"), {"address": "secret@globex.test"})
    assert Suppression.objects.filter(account=cast.globex).exists()


def test_a_viewer_sees_the_list_but_cannot_change_it(client, cast):
    Suppression.objects.create(account=cast.acme, address="gone@example.net", reason="manual")
    login(client, cast.victor)
    page = client.get(PAGE).content.decode()
    assert "gone@example.net" in page and 'aria-label="Remove' not in page
    assert client.post(reverse("relay:suppressions_remove"),
                       {"address": "gone@example.net"}).status_code == 403
    assert Suppression.objects.exists()


def test_csv_export_and_import_round_trip(client, cast):
    Suppression.objects.create(account=cast.acme, address="gone@example.net",
                               reason="mailbox_unknown", reply="550 5.1.1 No such user")
    login(client, cast.alice)
    exported = client.get(reverse("relay:suppressions_export"))
    assert exported["Content-Type"] == "text/csv"
    body = exported.content
    assert b"gone@example.net,mailbox_unknown,550 5.1.1 No such user" in body
    Suppression.objects.all().delete()
    client.post(reverse("relay:suppressions_import"),
                {"file": SimpleUploadedFile("list.csv", body, "text/csv")})
    assert list(Suppression.objects.values_list("address", "reason", "reply")) == [
        ("gone@example.net", "mailbox_unknown", "550 5.1.1 No such user")]


def test_a_user_chooses_where_its_reports_go_and_the_change_is_audited(client, cast):
    login(client, cast.alice)
    url = reverse("relay:dsn_settings_save", args=[cast.acme_smtp.pk])
    client.post(url, {"mode": "address", "address": "it@acme.test"})
    saved = DsnSettings.objects.get(smtp_user=cast.acme_smtp)
    assert (saved.mode, saved.address) == ("address", "it@acme.test")
    response = client.post(url, {"mode": "address", "address": ""}, follow=True)
    assert "is not an email address" in response.content.decode()
    assert AuditEvent.objects.filter(action="smtp_user.dsn_settings").count() == 1
    other = reverse("relay:dsn_settings", args=[cast.globex_smtp.pk])
    assert client.get(other).status_code == 404


def test_the_message_page_links_the_report_both_ways(client, cast):
    message, report = bounce(cast)
    login(client, cast.alice)
    page = client.get(reverse("relay:message_detail", args=[message.pk])).content.decode()
    assert "Failed report sent" in page
    assert reverse("relay:message_detail", args=[report.pk]) in page
    back = client.get(reverse("relay:message_detail", args=[report.pk])).content.decode()
    assert "Delivery report about" in back and message.queue_id in back


def test_the_messages_log_filters_reports(client, cast):
    message, report = bounce(cast)
    login(client, cast.alice)
    reports = client.get(reverse("relay:messages"), {"kind": "dsn"}).content.decode()
    assert "Undelivered Mail Returned to Sender" in reports and "(delivery report)" in reports
    assert reverse("relay:message_detail", args=[message.pk]) not in reports
    mail = client.get(reverse("relay:messages"), {"kind": "mail"}).content.decode()
    assert "(delivery report)" not in mail
    assert reverse("relay:message_detail", args=[message.pk]) in mail


def test_the_troubleshooter_says_whether_the_sender_heard_of_the_failures(cast):
    from django.utils import timezone

    bounce(cast)
    result = check_upstream(cast.acme_smtp, timezone.now())
    assert "Delivery reports (bounces) sent to the sender for them: 1" in result.evidence
    assert result.fix is not None
    assert result.fix.actions[1].url.endswith(f"user={cast.acme_smtp.pk}&kind=dsn")


def test_a_report_is_written_once_even_if_asked_twice(cast):
    message, _ = bounce(cast)
    assert notices.write_due() == 0
    assert Message.objects.filter(dsn_of=message).count() == 1


def test_reports_do_not_count_against_the_users_hourly_limit(cast):
    from relay.smtp.limits import messages_last_hour

    bounce(cast)
    assert Message.objects.filter(smtp_user=cast.acme_smtp).count() == 2
    assert messages_last_hour(cast.acme_smtp.pk) == 1
