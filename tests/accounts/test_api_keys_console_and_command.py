"""API keys in the console (owners and admins, shown once) and with `manage.py apikey`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.actions.api_keys import create_api_key
from accounts.api.keys import digest_key
from accounts.models import ApiKey, AuditEvent
from tests.conftest import login

pytestmark = pytest.mark.django_db

# --- console ---------------------------------------------------------------------------


def test_an_admin_creates_a_key_in_the_console_and_sees_it_only_once(client, cast):
    login(client, cast.bob)
    answer = client.post(reverse("accounts:api_key_create"), {
        "name": "Deploy pipeline", "role": "admin", "expires_days": "30",
        "networks": "10.0.0.0/8",
    })
    assert answer.status_code == 302
    key = ApiKey.objects.get(name="Deploy pipeline")
    assert key.account == cast.acme and key.created_by == cast.bob
    assert key.allowed_networks == ["10.0.0.0/8"] and key.expires_at is not None
    page = client.get(reverse("accounts:api_keys")).content.decode()
    shown = page.split('id="api-key" readonly value="')[1].split('"')[0]
    assert shown.startswith(f"smtpk_{key.prefix}_") and key.digest == digest_key(shown)
    assert shown not in client.get(reverse("accounts:api_keys")).content.decode()
    event = AuditEvent.objects.get(action="apikey.create")
    assert event.actor == cast.bob


def test_the_console_refuses_a_bad_network(client, cast):
    login(client, cast.alice)
    answer = client.post(reverse("accounts:api_key_create"), {"name": "X", "role": "admin",
                                                             "networks": "10.0.0.0/33"})
    assert answer.status_code == 400 and not ApiKey.objects.exists()


def test_a_viewer_cannot_see_or_create_keys(client, cast):
    login(client, cast.victor)
    assert client.get(reverse("accounts:api_keys")).status_code == 403
    assert client.post(reverse("accounts:api_key_create"), {"name": "X", "role": "admin"}
                       ).status_code == 403


def test_an_admin_revokes_a_key_in_the_console_but_not_another_accounts(client, cast):
    mine, _ = create_api_key(cast.acme, name="Mine")
    theirs, _ = create_api_key(cast.globex, name="Theirs")
    login(client, cast.alice)
    assert client.post(reverse("accounts:api_key_revoke", args=[theirs.pk])).status_code == 404
    assert client.post(reverse("accounts:api_key_revoke", args=[mine.pk])).status_code == 302
    mine.refresh_from_db(), theirs.refresh_from_db()
    assert mine.revoked_at is not None and theirs.revoked_at is None


def test_the_keys_page_lists_only_the_accounts_keys(client, cast):
    create_api_key(cast.acme, name="Acme deploy")
    create_api_key(cast.globex, name="Globex deploy")
    login(client, cast.alice)
    page = client.get(reverse("accounts:api_keys")).content.decode()
    assert "Acme deploy" in page and "Globex deploy" not in page


# --- command line ----------------------------------------------------------------------


def run(*args: str):
    out = StringIO()
    call_command("apikey", *args, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def test_the_command_creates_lists_and_revokes_keys(cast):
    created = run("create", "--account", "acme", "--name", "CI", "--role", "admin",
                  "--expires-days", "7", "--networks", "192.0.2.0/24")
    assert created["key"].startswith(f"smtpk_{created['prefix']}_")
    assert created["role"] == "admin" and created["allowed_networks"] == ["192.0.2.0/24"]
    listed = run("list", "--account", "acme")
    assert [k["name"] for k in listed] == ["CI"] and "key" not in listed[0]
    revoked = run("revoke", created["prefix"])
    assert revoked["revoked_at"] is not None
    event = AuditEvent.objects.get(action="apikey.revoke")
    assert event.actor_label.startswith("command line")


def test_the_command_refuses_bad_input(cast):
    with pytest.raises(CommandError, match="unknown account"):
        run("create", "--account", "nope", "--name", "X")
    with pytest.raises(CommandError, match="not an IP address"):
        run("create", "--account", "acme", "--name", "X", "--networks", "nope")
    with pytest.raises(CommandError, match="unknown API key"):
        run("revoke", "nope")


# --- send keys (bound to an SMTP+ user) ------------------------------------------------


def test_an_admin_creates_a_send_key_for_one_of_the_accounts_smtp_users(client, cast):
    login(client, cast.bob)
    answer = client.post(reverse("accounts:api_key_create"), {
        "name": "Shop sender", "role": "admin", "smtp_user": str(cast.acme_smtp.pk)})
    assert answer.status_code == 302
    key = ApiKey.objects.get(name="Shop sender")
    assert key.smtp_user == cast.acme_smtp and key.role == "read_only"
    page = client.get(reverse("accounts:api_keys")).content.decode()
    assert "Send key" in page and cast.acme_smtp.username in page
    assert AuditEvent.objects.get(action="apikey.create").details["sends_as"] == \
        cast.acme_smtp.username


def test_the_console_cannot_bind_a_key_to_another_accounts_smtp_user(client, cast):
    login(client, cast.alice)
    answer = client.post(reverse("accounts:api_key_create"), {
        "name": "X", "role": "admin", "smtp_user": str(cast.globex_smtp.pk)})
    assert answer.status_code == 400 and not ApiKey.objects.exists()
    page = client.get(reverse("accounts:api_keys")).content.decode()
    assert cast.acme_smtp.username in page and cast.globex_smtp.username not in page


def test_the_command_creates_a_send_key_only_for_the_accounts_own_smtp_user(cast):
    created = run("create", "--account", "acme", "--name", "Shop",
                  "--smtp-user", cast.acme_smtp.username)
    assert created["sends_as"] == cast.acme_smtp.username
    assert ApiKey.objects.get(prefix=created["prefix"]).smtp_user == cast.acme_smtp
    with pytest.raises(CommandError, match="no SMTP\\+ user"):
        run("create", "--account", "acme", "--name", "X", "--smtp-user",
            cast.globex_smtp.username)
