"""/api/v1/smtp-users: list, create (with the credentials), show, update, enable,
disable, reset and reveal the password; admin keys only for writes; audited with the
key's name; another account's user is a 404."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, SmtpUser
from relay.smtp.login import log_in
from tests.senders import own

pytestmark = pytest.mark.django_db


def test_it_lists_the_accounts_smtp_users_only(acme_reader, cast):
    answer = acme_reader.get("/smtp-users")
    assert answer.status_code == 200
    assert [u["username"] for u in answer.json()] == [cast.acme_smtp.username]


def test_it_creates_a_user_and_answers_with_working_credentials(acme_api, cast):
    own(cast.acme.pk, "billing.acme.test")
    answer = acme_api.post("/smtp-users", {"name": "Billing", "priority": 2,
                                            "hourly_limit": 500, "domains": ["billing.acme.test"]})
    assert answer.status_code == 201
    data = answer.json()
    user = SmtpUser.objects.get(pk=data["id"])
    assert user.account == cast.acme and user.name == "Billing" and user.hourly_limit == 500
    assert [d["domain"] for d in data["domains"]] == ["billing.acme.test"]
    assert log_in(data["username"], data["password"], None).result.ok
    event = AuditEvent.objects.get(action="smtpuser.create", target_id=str(user.pk))
    assert event.actor is None and event.actor_label == "API key: acme admin key"


def test_create_refuses_invalid_senders_and_saves_nothing(acme_api, cast):
    answer = acme_api.post("/smtp-users", {"name": "Bad", "domains": ["not a domain"]})
    assert answer.status_code == 422 and answer.json()["code"] == "invalid_senders"
    assert not SmtpUser.objects.filter(name="Bad").exists()


def test_create_refuses_out_of_range_fields_with_a_json_422(acme_api):
    answer = acme_api.post("/smtp-users", {"priority": 9})
    assert answer.status_code == 422
    assert answer.json()["code"] == "invalid" and "priority" in answer.json()["message"]


def test_it_shows_a_user_with_its_senders_but_never_its_password(acme_reader, cast):
    data = acme_reader.get(f"/smtp-users/{cast.acme_smtp.pk}").json()
    assert data["username"] == cast.acme_smtp.username
    assert [d["domain"] for d in data["domains"]] == ["acme.test"]
    assert "password" not in data and cast.acme_smtp_password not in str(data)


def test_it_updates_only_the_fields_given(acme_api, cast):
    answer = acme_api.patch(f"/smtp-users/{cast.acme_smtp.pk}", {"priority": 1, "hourly_limit": None})
    assert answer.status_code == 200
    user = SmtpUser.objects.get(pk=cast.acme_smtp.pk)
    assert user.priority == 1 and user.name == "Acme web shop" and user.hourly_limit is None
    assert AuditEvent.objects.get(action="smtpuser.edit").details == {"changed": {"priority": [3, 1]}}


def test_it_disables_and_enables_a_user(acme_api, cast):
    path = f"/smtp-users/{cast.acme_smtp.pk}"
    assert acme_api.post(f"{path}/disable").json()["active"] is False
    assert not log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok
    assert acme_api.post(f"{path}/enable").json()["active"] is True
    assert log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok
    assert set(AuditEvent.objects.filter(actor_label="API key: acme admin key")
               .values_list("action", flat=True)) == {"smtpuser.enable", "smtpuser.disable"}


def test_it_resets_the_password_and_the_old_one_stops_working(acme_api, cast):
    data = acme_api.post(f"/smtp-users/{cast.acme_smtp.pk}/reset-password").json()
    assert data["password"] != cast.acme_smtp_password
    assert log_in(cast.acme_smtp.username, data["password"], None).result.ok
    assert not log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok


def test_an_admin_key_reveals_the_password_and_it_is_audited(acme_api, cast):
    data = acme_api.post(f"/smtp-users/{cast.acme_smtp.pk}/reveal-password").json()
    assert data["password"] == cast.acme_smtp_password
    event = AuditEvent.objects.get(action="smtpuser.reveal")
    assert event.actor_label == "API key: acme admin key" and event.ip == "127.0.0.1"
    assert cast.acme_smtp_password not in str(event.details)


@pytest.mark.parametrize("method, suffix, body", [
    ("post", "", {"name": "X"}),
    ("patch", "/{pk}", {"name": "X"}),
    ("post", "/{pk}/disable", None),
    ("post", "/{pk}/enable", None),
    ("post", "/{pk}/reset-password", None),
    ("post", "/{pk}/reveal-password", None),
])
def test_a_read_only_key_gets_403_on_every_write(acme_reader, cast, method, suffix, body):
    path = "/smtp-users" + suffix.format(pk=cast.acme_smtp.pk)
    answer = acme_reader.call(method, path, body)
    assert answer.status_code == 403 and answer.json()["code"] == "read_only_key"
    user = SmtpUser.objects.get(pk=cast.acme_smtp.pk)
    assert user.name == "Acme web shop" and user.active
    assert log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok
    assert not AuditEvent.objects.filter(action__startswith="smtpuser.", actor_label__startswith="API").exists()


@pytest.mark.parametrize("method, suffix, body", [
    ("get", "", None),
    ("patch", "", {"name": "pwned"}),
    ("post", "/disable", None),
    ("post", "/reset-password", None),
    ("post", "/reveal-password", None),
])
def test_another_accounts_user_is_a_404(globex_api, cast, method, suffix, body):
    answer = globex_api.call(method, f"/smtp-users/{cast.acme_smtp.pk}{suffix}", body)
    assert answer.status_code == 404 and answer.json()["code"] == "not_found"
    user = SmtpUser.objects.get(pk=cast.acme_smtp.pk)
    assert user.name == "Acme web shop" and user.active
    assert log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok


def test_charlies_key_lists_nothing_of_acmes(globex_api, cast):
    assert [u["username"] for u in globex_api.get("/smtp-users").json()] == [cast.globex_smtp.username]
