"""The Maildir upstream delivers into a folder that exists already but is empty (it makes
cur/, new/ and tmp/ inside it), and refuses, saying why, a path that is a file: the
worker does not start with it, and mail met meanwhile stays queued."""

from __future__ import annotations

import mailbox
import smtplib

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from relay.delivery.worker import deliver_due
from relay.models import FailReason, Message, RecipientStatus

RAW = b"From: shop@acme.test\r\nTo: bob@example.net\r\nSubject: Your order\r\n\r\nShipped.\r\n"


def send(relay, cast) -> Message:
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        smtp.sendmail("shop@acme.test", ["bob@example.net"], RAW)
    return Message.objects.get()


def test_mail_is_delivered_into_an_existing_empty_folder(relay, cast, tmp_path):
    folder = tmp_path / "mail"
    folder.mkdir()
    message = send(relay, cast)

    assert deliver_due(upstream=f"maildir:{folder}")["delivered"] == 1

    assert message.recipients.get().status == RecipientStatus.DELIVERED
    assert sorted(p.name for p in folder.iterdir()) == ["cur", "new", "tmp"]
    [stored] = list(mailbox.Maildir(folder, create=False))
    assert stored["Subject"] == "Your order"
    assert stored["Delivered-To"] == "bob@example.net"


def test_a_folder_with_only_some_maildir_subfolders_is_completed(relay, cast, tmp_path):
    folder = tmp_path / "mail"
    (folder / "new").mkdir(parents=True)
    send(relay, cast)

    assert deliver_due(upstream=f"maildir:{folder}")["delivered"] == 1
    assert len(list((folder / "new").iterdir())) == 1


@pytest.mark.parametrize("file_at", ["", "tmp"])
def test_a_path_that_is_a_file_defers_the_mail_with_a_reply_naming_it(
    relay, cast, tmp_path, file_at
):
    folder = tmp_path / "mail"
    if file_at:
        folder.mkdir()
    blocked = folder / file_at if file_at else folder
    blocked.write_text("not a folder")
    message = send(relay, cast)

    deliver_due(upstream=f"maildir:{folder}")

    rcpt = message.recipients.get()
    assert (rcpt.status, rcpt.last_reason) == (RecipientStatus.DEFERRED, FailReason.WRITE_FAILED)
    assert f"{blocked} is a file, not a directory" in rcpt.last_text
    blocked.unlink()  # fixed: the queued message goes out on the next pass
    rcpt.next_attempt_at = rcpt.created
    rcpt.save(update_fields=["next_attempt_at"])
    assert deliver_due(upstream=f"maildir:{folder}")["delivered"] == 1


def test_the_worker_refuses_to_start_with_a_maildir_path_that_is_a_file(settings, tmp_path):
    blocked = tmp_path / "mail"
    blocked.write_text("not a folder")
    settings.RELAY_UPSTREAM = f"maildir:{blocked}"
    with pytest.raises(CommandError, match=f"RELAY_UPSTREAM: {blocked} is a file, not a directory"):
        call_command("deliver", "--once")
