"""`manage.py smtpuser`: JSON on stdout, a clear error and exit 1 on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from accounts.models import AuditEvent, SmtpUser
from relay.smtp.login import log_in
from tests.fake_upstream import database_url_for_subprocess
from tests.senders import authorize_email, own

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _acme_owns_the_domains(cast):
    """Acme owns the domains these tests authorize (only owned domains can be)."""
    for domain in ('a.test', 'b.test', 'shop.test', 'good.test', 'ok.test'):
        own(cast.acme.pk, domain, include_subdomains=True)

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> dict:
    out = StringIO()
    call_command("smtpuser", *args, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def test_create_prints_the_username_password_and_account(cast):
    data = run("create", "--account", "acme", "--name", "Web shop")
    assert set(data) == {"username", "password", "account"}
    assert data["account"] == "acme"
    user = SmtpUser.objects.get(username=data["username"])
    assert user.account == cast.acme and user.name == "Web shop"
    assert log_in(data["username"], data["password"], None).result.ok
    event = AuditEvent.objects.get(action="smtpuser.create", target_id=str(user.pk))
    assert event.actor is None and event.actor_label.startswith("command line")


def test_create_authorizes_the_domains_and_emails_given(cast):
    data = run("create", "--account", "acme", "--domains", "a.test;b.test", "--emails", "x@c.test")
    user = SmtpUser.objects.get(username=data["username"])
    assert set(user.authorized_domains.values_list("domain", flat=True)) == {"a.test", "b.test"}
    assert list(user.authorized_emails.values_list("email", flat=True)) == ["x@c.test"]


def test_create_with_an_unknown_account_fails(cast):
    with pytest.raises(CommandError, match="unknown account 'nope'"):
        run("create", "--account", "nope")


def test_create_with_an_invalid_domain_names_it_and_creates_nothing(cast):
    before = SmtpUser.objects.count()
    with pytest.raises(CommandError) as exc:
        run("create", "--account", "acme", "--domains", "good.test;bad..domain")
    assert "invalid domain 'bad..domain': empty label (two dots in a row)" in str(exc.value)
    assert SmtpUser.objects.count() == before


def test_show_prints_the_user_without_its_password(cast):
    authorize_email(cast.acme_smtp, "news@xn--bcher-kva.example")
    data = run("show", cast.acme_smtp.username)
    assert data == {
        "username": cast.acme_smtp.username, "name": "Acme web shop", "account": "acme",
        "active": True, "priority": 3, "hourly_limit": None,
        "domains": ["acme.test"], "domains_with_subdomains": [],
        "emails": ["news@bücher.example"], "last_login_at": None, "last_login_ip": None,
    }
    assert not AuditEvent.objects.filter(action="smtpuser.reveal").exists()


def test_show_reveal_prints_the_password_and_is_audited(cast):
    data = run("show", cast.acme_smtp.username, "--reveal")
    assert data["password"] == cast.acme_smtp_password
    event = AuditEvent.objects.get(action="smtpuser.reveal")
    assert event.actor_label.startswith("command line") and event.account == cast.acme


def test_show_an_unknown_user_fails(cast):
    with pytest.raises(CommandError, match="unknown SMTP\\+ user 'smtp-nobody'"):
        run("show", "smtp-nobody")


def test_authorize_adds_senders_and_reports_them(cast):
    data = run("authorize", cast.acme_smtp.username, "--domains", "shop.test acme.test",
               "--emails", "a@b.test", "--include-subdomains")
    assert data["added_domains"] == ["shop.test"] and data["unchanged"] == ["acme.test"]
    assert data["added_emails"] == ["a@b.test"]
    assert dict(cast.acme_smtp.authorized_domains.values_list("domain", "include_subdomains")) == {
        "acme.test": False, "shop.test": True}
    event = AuditEvent.objects.get(action="smtpuser.senders_add")
    assert event.details["added_domains"] == ["shop.test"]


def test_authorize_with_an_invalid_entry_changes_nothing(cast):
    with pytest.raises(CommandError) as exc:
        run("authorize", cast.acme_smtp.username, "--domains", "ok.test", "--emails", "nobody")
    assert "invalid email 'nobody': missing @" in str(exc.value)
    assert list(cast.acme_smtp.authorized_domains.values_list("domain", flat=True)) == ["acme.test"]


def test_authorize_refuses_an_address_given_as_a_domain(cast):
    with pytest.raises(CommandError, match="'x@a.test' is an email address: give it with --emails"):
        run("authorize", cast.acme_smtp.username, "--domains", "x@a.test")


def test_authorize_needs_something_to_authorize(cast):
    with pytest.raises(CommandError, match="nothing to authorize"):
        run("authorize", cast.acme_smtp.username)


def test_disable_and_enable(cast):
    assert run("disable", cast.acme_smtp.username) == {"username": cast.acme_smtp.username, "active": False}
    outcome = log_in(cast.acme_smtp.username, cast.acme_smtp_password, None)
    assert outcome.result.reason == "user disabled"
    assert run("enable", cast.acme_smtp.username)["active"] is True
    assert log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok
    actions = set(AuditEvent.objects.filter(target_id=str(cast.acme_smtp.pk)).values_list("action", flat=True))
    assert {"smtpuser.enable", "smtpuser.disable"} <= actions


def test_reset_password_prints_a_new_password_and_the_old_one_stops_working(cast):
    data = run("reset-password", cast.acme_smtp.username)
    assert data["password"] != cast.acme_smtp_password
    assert log_in(cast.acme_smtp.username, data["password"], None).result.ok
    assert not log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok
    assert AuditEvent.objects.filter(action="smtpuser.reset_password").count() == 1


def manage(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess()}
    return subprocess.run(
        [sys.executable, "manage.py", "smtpuser", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


@pytest.mark.django_db(transaction=True)
def test_from_the_shell_bad_input_exits_1_with_the_reason_on_stderr(cast):
    bad = manage("create", "--account", "acme", "--domains", "bad..domain")
    assert bad.returncode == 1
    assert bad.stdout == ""
    assert "invalid domain 'bad..domain': empty label (two dots in a row)" in bad.stderr
    assert "Traceback" not in bad.stderr
    good = manage("create", "--account", "acme")
    assert good.returncode == 0, good.stderr
    data = json.loads(good.stdout)
    assert SmtpUser.objects.get(username=data["username"]).get_password() == data["password"]
