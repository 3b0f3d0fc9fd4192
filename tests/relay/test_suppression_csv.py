"""The suppression list's CSV: an export imported again (console, `manage.py
suppression`, the relay module) keeps each entry's reason, reply, note, time added and
expiry; a plain list gets reason "imported"; a bad row refuses the whole file and the
error names the row (as a spreadsheet numbers it) and what is wrong with it."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from accounts.audit import Actor
from relay import suppression_csv, suppressions
from relay.models import Suppression, SuppressionReason
from tests.conftest import login
from tests.relay.console.test_messages import make_message

pytestmark = pytest.mark.django_db
FIELDS = ("address", "reason", "reply", "note", "created", "expires", "message_id")


def seed(account, cast) -> None:  # noqa: ANN001
    now = timezone.now().replace(microsecond=0)
    cause = make_message(cast.acme_smtp, recipients=[("gone@example.net", "failed")])
    Suppression.objects.create(account=account, address="gone@example.net",
                               reason=SuppressionReason.MAILBOX_UNKNOWN,
                               reply="550 5.1.1 <gone@example.net>: No such user, \"really\"",
                               message=cause, created=now - timedelta(days=40))
    Suppression.objects.create(account=account, address="off@example.org",
                               reason=SuppressionReason.MAILBOX_DISABLED,
                               reply="550 5.2.1 Mailbox disabled", note="=left the company",
                               created=now - timedelta(days=3), expires=now + timedelta(days=30))
    Suppression.objects.create(account=account, address="typo@example.com",
                               reason=SuppressionReason.MANUAL, note="+typo, fixed",
                               created=now - timedelta(hours=2))


def entries(account) -> list[tuple]:  # noqa: ANN001
    rows = Suppression.objects.filter(account=account).order_by("address")
    return [tuple(getattr(e, f) for f in FIELDS if f != "message_id") for e in rows]


def test_an_export_imported_into_another_account_keeps_every_column(cast):
    seed(cast.acme, cast)
    exported = suppression_csv.export_csv(suppressions.search(cast.acme))
    result = suppression_csv.import_csv(cast.globex, exported, Actor.command_line())
    assert result.errors == [] and len(result.added) == 3
    assert entries(cast.globex) == entries(cast.acme)
    reasons = dict(Suppression.objects.filter(account=cast.globex).values_list("address", "reason"))
    assert reasons == {"gone@example.net": "mailbox_unknown", "off@example.org": "mailbox_disabled",
                       "typo@example.com": "manual"}


def test_the_command_line_import_round_trips_an_export(cast, tmp_path):
    seed(cast.acme, cast)
    out = StringIO()
    call_command("suppression", "export", "--account", cast.acme.slug, stdout=out)
    path = tmp_path / "list.csv"
    path.write_text(out.getvalue())
    call_command("suppression", "import", "--account", cast.globex.slug, str(path), stdout=StringIO())
    assert entries(cast.globex) == entries(cast.acme)


def test_the_console_import_round_trips_an_export(client, cast):
    seed(cast.acme, cast)
    login(client, cast.alice)
    body = client.get(reverse("relay:suppressions_export")).content
    before = entries(cast.acme)
    Suppression.objects.filter(account=cast.acme).delete()
    client.post(reverse("relay:suppressions_import"),
                {"file": SimpleUploadedFile("list.csv", body, "text/csv")})
    assert entries(cast.acme) == before


def test_reimporting_an_export_into_the_same_account_changes_nothing(cast):
    seed(cast.acme, cast)
    before = entries(cast.acme)
    exported = suppression_csv.export_csv(suppressions.search(cast.acme))
    assert suppression_csv.import_csv(cast.acme, exported, Actor.command_line()).errors == []
    assert entries(cast.acme) == before
    # The link to the message that caused it stays: the file does not name it.
    assert Suppression.objects.get(address="gone@example.net").message_id is not None


def test_a_plain_list_is_imported_with_reason_imported_from_now_on(cast):
    text = "# addresses from the old relay\nOld@Example.NET\n\nother@bücher.example\n"
    result = suppression_csv.import_csv(cast.acme, text, Actor.command_line())
    assert result.errors == []
    found = Suppression.objects.filter(account=cast.acme).order_by("address")
    assert [(e.address, e.reason, e.expires) for e in found] == [
        ("old@example.net", "imported", None), ("other@xn--bcher-kva.example", "imported", None)]
    assert all(timezone.now() - e.created < timedelta(minutes=1) for e in found)


def test_a_header_names_the_columns_in_any_order(cast):
    text = "Expires,Address,Reason\n2030-01-01T00:00:00+00:00,a@example.net,mailbox_unknown\n"
    assert suppression_csv.import_csv(cast.acme, text, Actor.command_line()).errors == []
    entry = Suppression.objects.get(account=cast.acme)
    assert (entry.address, entry.reason, entry.expires.year) == ("a@example.net", "mailbox_unknown",
                                                                 2030)


BAD_ROWS = [
    ("address,reason\nok@example.net,\nnot-an-address,manual\n",
     "row 3: 'not-an-address' is not an email address"),
    ("ok@example.net,bounced\n", "row 1: reason 'bounced' is not one of mailbox_unknown"),
    ("ok@example.net,manual,,,,next tuesday\n",
     "row 1: expiry 'next tuesday' is not a date and time"),
    ("ok@example.net,manual,,,2026-02-30T10:00:00\n",
     "row 1: created '2026-02-30T10:00:00' is not a date and time"),
    ("ok@example.net,manual,,,,,extra\n", "row 1: 7 values, but there are 6 columns"),
    ("address,reason,why\nok@example.net,manual,x\n", "row 1: unknown column 'why'"),
    (f"ok@example.net,manual,,{'n' * 201}\n", "row 1: the note is longer than 200 characters"),
    ("a@example.net,manual\nb@example.net,manual\nA@example.net,mailbox_unknown\n",
     "row 3: a@example.net is also on row 1, differently"),
    ('address,note\nok@example.net,"two\nlines"\nbad,x\n', "row 3: 'bad' is not an email address"),
    ('ok@example.net\n"b@example.net,manual\n', "row 2: not CSV (unexpected end of data)"),
]


@pytest.mark.parametrize(("text", "error"), BAD_ROWS)
def test_a_bad_row_refuses_the_whole_file_naming_the_row_and_why(cast, text, error):
    result = suppression_csv.import_csv(cast.acme, text, Actor.command_line())
    assert result.added == []
    assert any(e.startswith(error) for e in result.errors), result.errors
    assert not Suppression.objects.exists()


def test_the_same_row_twice_is_imported_once(cast):
    result = suppression_csv.import_csv(cast.acme, "a@example.net\nA@Example.net\n", Actor.command_line())
    assert result.errors == [] and result.added == ["a@example.net"]


def test_the_command_and_the_console_name_the_bad_row(client, cast, tmp_path):
    path = tmp_path / "list.csv"
    path.write_text("ok@example.net,manual\nok2@example.net,unknown-reason\n")
    with pytest.raises(CommandError, match="row 2: reason 'unknown-reason'"):
        call_command("suppression", "import", "--account", cast.acme.slug, str(path))
    login(client, cast.alice)
    page = client.post(reverse("relay:suppressions_import"),
                       {"file": SimpleUploadedFile("list.csv", path.read_bytes(), "text/csv")},
                       follow=True).content.decode()
    assert "Nothing imported from list.csv: row 2: reason &#x27;unknown-reason&#x27;" in page
    assert not Suppression.objects.exists()


@pytest.mark.parametrize("days", ["0", "-1", "x", "36501"])
def test_an_expiry_out_of_range_is_refused_by_the_console_and_the_command(client, cast, days):
    login(client, cast.bob)
    page = client.post(reverse("relay:suppressions_add"),
                       {"address": "a@example.net", "expires_days": days}, follow=True)
    assert "give a number of days from 1 to 36500" in page.content.decode()
    if days.lstrip("-").isdigit():
        with pytest.raises(CommandError, match="give a number of days from 1 to 36500"):
            call_command("suppression", "add", "--account", cast.acme.slug, "a@example.net",
                         "--expires-days", days)
    assert not Suppression.objects.exists()
