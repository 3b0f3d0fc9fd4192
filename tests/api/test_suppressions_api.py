"""/api/v1/suppressions: the account's suppression list as the console has it — search
and reason filter in keyset pages, one entry, add and remove (audited with the key's
name, validated and normalised as in the console and `manage.py suppression`), CSV
export and import. Read-only keys read; only admin keys write; another account's entry
is a 404."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from relay import suppressions
from relay.models import Suppression, SuppressionReason
from tests.api.conftest import ApiClient, key_for
from tests.conftest import login

pytestmark = pytest.mark.django_db


def entry(account, address: str, reason: str = SuppressionReason.MANUAL, **fields) -> Suppression:  # noqa: ANN001
    return Suppression.objects.create(account=account, address=address, reason=reason, **fields)


def post_csv(api: ApiClient, body: bytes | str) -> object:
    return api.client.post("/api/v1/suppressions/import", body, content_type="text/csv",
                           headers=api._headers())


def audit(action: str) -> list[tuple[str, str]]:
    return list(AuditEvent.objects.filter(action=action).values_list("actor_label", "target_label"))


def test_it_lists_the_accounts_entries_newest_first_with_the_consoles_filters(acme_reader, cast):
    now = timezone.now()
    gone = entry(cast.acme, "gone@example.net", SuppressionReason.MAILBOX_UNKNOWN,
                 reply="550 5.1.1 No such user", created=now - timedelta(days=1))
    typo = entry(cast.acme, "typo@example.com", expires=now - timedelta(hours=1))
    entry(cast.globex, "secret@globex.test")
    data = acme_reader.get("/suppressions").json()
    assert [e["id"] for e in data["items"]] == [typo.pk, gone.pk]
    assert data["items"][1] == {
        "id": gone.pk, "address": "gone@example.net", "reason": "mailbox_unknown",
        "reply": "550 5.1.1 No such user", "note": "", "message_id": None,
        "created": data["items"][1]["created"], "expires": None, "active": True}
    assert data["items"][0]["active"] is False  # expired: the relay sends to it again
    assert [e["address"] for e in acme_reader.get("/suppressions", q="GONE").json()["items"]] == [
        "gone@example.net"]
    assert [e["address"] for e in acme_reader.get("/suppressions", reason="manual").json()["items"]] == [
        "typo@example.com"]


def test_it_filters_exactly_as_the_console_page(client, cast, acme_reader):
    for i in range(6):
        entry(cast.acme, f"user{i}@example.{'net' if i % 2 else 'org'}",
              SuppressionReason.MAILBOX_UNKNOWN if i % 3 else SuppressionReason.MANUAL)
    login(client, cast.alice)
    for params in ({}, {"q": "example.net"}, {"reason": "manual"}, {"q": "USER1", "reason": "mailbox_unknown"}):
        page = client.get(reverse("relay:suppressions"), params).context["entries"]
        assert [e["id"] for e in acme_reader.get("/suppressions", **params).json()["items"]] == [
            e.pk for e in page], params


def test_it_pages_by_keyset_cursors(acme_reader, cast):
    now = timezone.now()
    made = [entry(cast.acme, f"a{i}@example.net", created=now - timedelta(minutes=i)) for i in range(105)]
    first = acme_reader.get("/suppressions").json()
    assert len(first["items"]) == 100 and first["newer"] is None and first["older"]
    second = acme_reader.get("/suppressions", before=first["older"]).json()
    assert [e["id"] for e in second["items"]] == [e.pk for e in made[100:]]
    assert second["older"] is None
    back = acme_reader.get("/suppressions", after=second["newer"]).json()
    assert [e["id"] for e in back["items"]] == [e["id"] for e in first["items"]]


def test_an_unknown_reason_is_refused(acme_reader, cast):
    answer = acme_reader.get("/suppressions", reason="bounced")
    assert answer.status_code == 422 and answer.json()["code"] == "invalid"


def test_it_shows_one_entry_and_another_accounts_is_not_found(acme_reader, globex_api, cast):
    mine = entry(cast.acme, "gone@example.net", note="left")
    assert acme_reader.get(f"/suppressions/{mine.pk}").json()["note"] == "left"
    answer = globex_api.get(f"/suppressions/{mine.pk}")
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    assert acme_reader.get("/suppressions/999999").status_code == 404


def test_an_admin_key_adds_an_address_normalised_and_audited_with_its_name(acme_api, cast):
    answer = acme_api.post("/suppressions", {"address": "Gone@Bücher.Example", "note": "left",
                                             "expires_days": 30})
    assert answer.status_code == 201
    data = answer.json()
    assert (data["address"], data["reason"], data["note"]) == ("gone@xn--bcher-kva.example",
                                                               "manual", "left")
    stored = Suppression.objects.get(account=cast.acme)
    assert timedelta(days=29) < stored.expires - timezone.now() <= timedelta(days=30)
    assert suppressions.refusal_for(cast.acme.pk, "GONE@bücher.example") is not None
    assert audit("suppression.added") == [("API key: acme admin key", "gone@xn--bcher-kva.example")]


def test_adding_a_listed_address_again_renews_it(acme_api, cast):
    old = entry(cast.acme, "gone@example.net", SuppressionReason.MAILBOX_UNKNOWN,
                created=timezone.now() - timedelta(days=9), expires=timezone.now())
    data = acme_api.post("/suppressions", {"address": "gone@example.net", "note": "again"}).json()
    assert data["id"] == old.pk and data["expires"] is None and data["reason"] == "manual"
    assert Suppression.objects.count() == 1


@pytest.mark.parametrize(("body", "message"), [
    ({"address": "nope"}, "'nope' is not an email address"),
    ({"address": "a@example.net", "expires_days": 0}, "expires_days"),
    ({"address": "a@example.net", "expires_days": 36501}, "expires_days"),
    ({"address": "a@example.net", "note": "n" * 201}, "note"),
])
def test_what_the_console_refuses_is_a_422_naming_it(acme_api, cast, body, message):
    answer = acme_api.post("/suppressions", body)
    assert answer.status_code == 422 and message in answer.json()["message"]
    assert not Suppression.objects.exists() and not audit("suppression.added")


def test_an_admin_key_removes_an_entry_audited(acme_api, cast):
    gone = entry(cast.acme, "gone@example.net")
    assert acme_api.delete(f"/suppressions/{gone.pk}").status_code == 204
    assert not Suppression.objects.exists()
    assert audit("suppression.removed") == [("API key: acme admin key", "gone@example.net")]
    assert acme_api.delete(f"/suppressions/{gone.pk}").status_code == 404


def test_another_accounts_key_cannot_remove_an_entry(globex_api, cast):
    mine = entry(cast.acme, "gone@example.net")
    answer = globex_api.delete(f"/suppressions/{mine.pk}")
    assert answer.status_code == 404
    assert Suppression.objects.filter(pk=mine.pk).exists() and not audit("suppression.removed")


def test_a_read_only_key_reads_but_cannot_add_remove_or_import(acme_reader, cast):
    gone = entry(cast.acme, "gone@example.net")
    assert acme_reader.get("/suppressions").status_code == 200
    assert acme_reader.get(f"/suppressions/{gone.pk}").status_code == 200
    assert acme_reader.get("/suppressions/export").status_code == 200
    for answer in (acme_reader.post("/suppressions", {"address": "x@example.net"}),
                   acme_reader.delete(f"/suppressions/{gone.pk}"),
                   post_csv(acme_reader, "x@example.net\n")):
        assert answer.status_code == 403 and answer.json()["code"] == "read_only_key"
    assert list(Suppression.objects.values_list("address", flat=True)) == ["gone@example.net"]
    assert not AuditEvent.objects.filter(action__startswith="suppression.").exists()


def test_the_export_is_the_consoles_csv_of_the_accounts_entries(client, acme_reader, cast):
    entry(cast.acme, "gone@example.net", SuppressionReason.MAILBOX_UNKNOWN, reply="550 5.1.1 No")
    entry(cast.acme, "=typo@example.net", note="+1")
    entry(cast.globex, "secret@globex.test")
    answer = acme_reader.get("/suppressions/export")
    assert answer.status_code == 200 and answer["Content-Type"] == "text/csv"
    login(client, cast.alice)
    assert answer.content == client.get(reverse("relay:suppressions_export")).content
    assert b"secret@globex.test" not in answer.content
    only = acme_reader.get("/suppressions/export", reason="mailbox_unknown").content.decode()
    assert only.splitlines()[1:] == [
        line for line in answer.content.decode().splitlines() if "mailbox_unknown" in line]


def test_an_export_imported_with_an_admin_key_round_trips_every_column(acme_api, globex_api, cast):
    now = timezone.now()
    entry(cast.acme, "gone@example.net", SuppressionReason.MAILBOX_UNKNOWN,
          reply="550 5.1.1 No such user", created=now - timedelta(days=4))
    entry(cast.acme, "off@example.net", SuppressionReason.MAILBOX_DISABLED, note="=HR",
          expires=now + timedelta(days=7))
    exported = acme_api.get("/suppressions/export").content
    answer = post_csv(globex_api, exported)
    assert answer.status_code == 200
    assert sorted(answer.json()["added"]) == ["gone@example.net", "off@example.net"]
    fields = ("address", "reason", "reply", "note", "created", "expires")
    assert (list(Suppression.objects.filter(account=cast.globex).values_list(*fields))
            == list(Suppression.objects.filter(account=cast.acme).values_list(*fields)))
    assert audit("suppression.imported") == [("API key: globex admin key", "2 address(es)")]


def test_a_bad_row_refuses_the_whole_import_naming_it(acme_api, cast):
    answer = post_csv(acme_api, "ok@example.net\nnot-an-address\nok2@example.net,bounced\n")
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_csv"
    message = answer.json()["message"]
    assert "row 2: 'not-an-address' is not an email address" in message
    assert "row 3: reason 'bounced' is not one of" in message
    assert not Suppression.objects.exists() and not audit("suppression.imported")


def test_an_import_that_is_not_utf8_or_too_large_is_refused(acme_api, cast, settings):
    answer = post_csv(acme_api, "caf\xe9@example.net\n".encode("latin-1"))
    assert answer.status_code == 422 and answer.json()["message"] == "The file is not UTF-8 text."
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = None
    big = ("a@example.net," + "x" * 100 + "\n") * 60_000
    answer = post_csv(acme_api, big)
    assert answer.status_code == 413 and answer.json()["code"] == "request_too_large"
    assert not Suppression.objects.exists()


def test_a_key_of_another_account_imports_into_its_own_account_only(globex_api, cast):
    entry(cast.acme, "gone@example.net", note="acme's")
    assert post_csv(globex_api, "gone@example.net,manual,,globex's\n").status_code == 200
    assert Suppression.objects.get(account=cast.acme).note == "acme's"
    assert Suppression.objects.get(account=cast.globex).note == "globex's"


def test_without_a_key_every_suppression_endpoint_is_a_401(cast):
    mine = entry(cast.acme, "gone@example.net")
    anonymous = ApiClient(None)
    for answer in (anonymous.get("/suppressions"), anonymous.get(f"/suppressions/{mine.pk}"),
                   anonymous.get("/suppressions/export"),
                   anonymous.post("/suppressions", {"address": "x@example.net"}),
                   anonymous.delete(f"/suppressions/{mine.pk}"), post_csv(anonymous, "x@example.net")):
        assert answer.status_code == 401 and answer.json()["code"] == "missing_key"


def test_a_send_key_cannot_use_the_suppression_list(cast):
    mine = entry(cast.acme, "gone@example.net")
    shop = ApiClient(key_for(cast.acme, smtp_user=cast.acme_smtp))
    for answer in (shop.get("/suppressions"), shop.get(f"/suppressions/{mine.pk}"),
                   shop.get("/suppressions/export"),
                   shop.post("/suppressions", {"address": "x@example.net"}),
                   shop.delete(f"/suppressions/{mine.pk}"), post_csv(shop, "x@example.net")):
        assert (answer.status_code, answer.json()["code"]) == (403, "send_key")
    assert list(Suppression.objects.values_list("address", flat=True)) == ["gone@example.net"]
