"""createaccount, credentialkey, rotatecredentials, bootstrap, and `check --deploy`."""

from __future__ import annotations

import datetime
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from accounts.actions.smtp_users import create_smtp_user
from accounts.credentials import generate_password
from accounts.models import Account, AuditEvent, Membership, Role, SmtpUser
from relay.smtp.login import log_in
from tests.conftest import PASSWORD

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def manage(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )


# --- createaccount ----------------------------------------------------------------------


def test_createaccount_prints_the_account_owner_and_password_as_json(db):
    result = json.loads(run("createaccount", "Initech Corp", "--owner", "Dave@Initech.test"))
    assert result["account"] == "initech-corp" and result["owner"] == "dave@initech.test"
    assert len(result["password"]) >= 16
    dave = User.objects.get(username="dave@initech.test")
    assert dave.check_password(result["password"])
    membership = Membership.objects.get(user=dave)
    assert membership.account.name == "Initech Corp" and membership.role == Role.OWNER


def test_createaccount_uses_the_given_password(db):
    result = json.loads(run("createaccount", "Initech", "--owner", "dave@initech.test", "--password", PASSWORD))
    assert result["password"] == PASSWORD
    assert User.objects.get(username="dave@initech.test").check_password(PASSWORD)


def test_createaccount_keeps_an_existing_users_password(cast):
    result = json.loads(run("createaccount", "Acme Labs", "--owner", "alice@acme.test", "--password", "other"))
    assert result == {"account": "acme-labs", "owner": "alice@acme.test", "password": None}
    assert User.objects.get(username="alice@acme.test").check_password(PASSWORD)
    assert Membership.objects.filter(user=cast.alice).count() == 2


def test_createaccount_gives_the_second_account_with_a_name_its_own_slug(cast):
    assert json.loads(run("createaccount", "Acme", "--owner", "zed@acme.test"))["account"] == "acme-2"


def test_createaccount_is_audited_as_the_command_line(db):
    run("createaccount", "Initech", "--owner", "dave@initech.test")
    event = AuditEvent.objects.get(action="account.create")
    assert event.actor is None and event.actor_label.startswith("command line: manage.py")
    assert event.details == {"owner": "dave@initech.test"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["Initech", "--owner", "not-an-email"], "not a valid email"),
        (["Initech", "--owner", "dave@"], "not a valid email"),
        (["   ", "--owner", "dave@initech.test"], "name is empty"),
        (["Initech", "--owner", "dave@initech.test", "--password", " "], "--password is empty"),
    ],
)
def test_createaccount_refuses_bad_input(db, args, message):
    with pytest.raises(CommandError, match=message):
        run("createaccount", *args)
    assert not Account.objects.exists() and not User.objects.exists()


def test_createaccount_bad_input_exits_1_with_the_reason_on_stderr():
    done = manage("createaccount", "Initech", "--owner", "nope")
    assert done.returncode == 1
    assert done.stdout == ""
    assert "'nope' is not a valid email address" in done.stderr
    assert "Traceback" not in done.stderr


# --- credentialkey ----------------------------------------------------------------------


def test_credentialkey_prints_a_new_fernet_key():
    first, second = run("credentialkey").strip(), run("credentialkey").strip()
    assert first != second
    token = Fernet(first.encode()).encrypt(b"x")
    assert Fernet(first.encode()).decrypt(token) == b"x"


# --- rotatecredentials ------------------------------------------------------------------


@pytest.fixture
def old_key(settings) -> str:
    key = Fernet.generate_key().decode()
    settings.SMTPPLUS_CREDENTIAL_KEYS = [key]
    return key


def test_rotatecredentials_reencrypts_every_password_with_the_newest_key(cast, old_key, settings):
    users = [create_smtp_user(cast.acme, name=f"app {i}") for i in range(3)]
    users.append((cast.acme_smtp, cast.acme_smtp_password))
    users.append((cast.globex_smtp, cast.globex_smtp_password))
    # The cast's users were made with the development key: re-encrypt them under old_key.
    for smtp_user, password in users[-2:]:
        smtp_user.set_password(password)
        smtp_user.save()
    new_key = Fernet.generate_key().decode()
    settings.SMTPPLUS_CREDENTIAL_KEYS = [new_key, old_key]
    # Before rotating, logins still work: digests under the older key are accepted.
    assert log_in(users[0][0].username, users[0][1], None).result.ok

    result = json.loads(run("rotatecredentials", "--batch-size", "2"))

    assert result == {
        "reencrypted": 5, "failed": 0, "batches": 3, "webhook_secrets": 0, "dkim_keys": 0,
        "failed_usernames": []
    }
    only_new = Fernet(new_key.encode())
    for smtp_user, password in users:
        smtp_user.refresh_from_db()
        assert only_new.decrypt(smtp_user.password_encrypted.encode()).decode() == password
        assert log_in(smtp_user.username, password, None).result.ok
    settings.SMTPPLUS_CREDENTIAL_KEYS = [new_key]  # the old key can now be dropped
    assert all(log_in(u.username, p, None).result.ok for u, p in users)
    (event,) = AuditEvent.objects.filter(action="credentials.rotate")
    assert event.account is None and event.details == {
        "reencrypted": 5, "failed": 0, "batches": 3, "webhook_secrets": 0, "dkim_keys": 0
    }
    assert event.actor_label.startswith("command line")


def test_rotatecredentials_names_passwords_no_key_can_decrypt(cast, old_key, settings):
    lost = SmtpUser.objects.get(pk=cast.globex_smtp.pk)
    lost.password_encrypted = Fernet(Fernet.generate_key()).encrypt(b"unreadable").decode()
    lost.save()
    cast.acme_smtp.set_password(cast.acme_smtp_password)
    cast.acme_smtp.save()
    out = io.StringIO()
    with pytest.raises(CommandError, match=lost.username):
        call_command("rotatecredentials", stdout=out)
    assert json.loads(out.getvalue())["failed_usernames"] == [lost.username]
    assert json.loads(out.getvalue())["reencrypted"] == 1
    assert log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok
    with pytest.raises(InvalidToken):
        SmtpUser.objects.get(pk=lost.pk).get_password()


def test_rotatecredentials_reencrypts_alert_webhook_secrets_too(cast, old_key, settings):
    from alerts.rules import create_default_rule, reset_secret

    for smtp_user, password in [(cast.acme_smtp, cast.acme_smtp_password),
                                (cast.globex_smtp, cast.globex_smtp_password)]:
        smtp_user.set_password(password)
        smtp_user.save()
    rule = create_default_rule(cast.acme.pk)
    rule.webhook_url = "https://hooks.acme.test/smtp"
    rule.save()
    secret = reset_secret(rule)
    new_key = Fernet.generate_key().decode()
    settings.SMTPPLUS_CREDENTIAL_KEYS = [new_key, old_key]

    result = json.loads(run("rotatecredentials"))

    assert result["webhook_secrets"] == 1
    rule.refresh_from_db()
    assert Fernet(new_key.encode()).decrypt(rule.webhook_secret_encrypted.encode()).decode() == secret


def test_rotatecredentials_with_no_users_reports_zero(db):
    assert json.loads(run("rotatecredentials")) == {
        "reencrypted": 0, "failed": 0, "batches": 0, "webhook_secrets": 0, "dkim_keys": 0,
        "failed_usernames": []
    }


# --- bootstrap --------------------------------------------------------------------------


def test_bootstrap_creates_a_first_account_and_prints_how_to_log_in(db, settings):
    settings.SMTPPLUS_CONSOLE_URL = "http://127.0.0.1:8000"
    out = run("bootstrap")
    account = Account.objects.get()
    assert account.name == "My company"
    owner = Membership.objects.get(account=account, role=Role.OWNER).user
    assert owner.username == "admin@localhost"
    assert "Log in at:  http://127.0.0.1:8000/login/" in out
    assert "Email:      admin@localhost" in out
    password = next(line for line in out.splitlines() if "Password:" in line).split()[-1]
    assert owner.check_password(password)
    assert out.rstrip().endswith("console: http://127.0.0.1:8000")


def test_bootstrap_gives_the_first_account_a_demo_domain_it_can_authorize_without_dns(db):
    from accounts.actions.senders import add_senders
    from accounts.actions.smtp_users import create_smtp_user
    from accounts.models import SendingDomain, VerifiedHow
    from accounts.senders import can_send_as

    out = run("bootstrap", "--no-migrate")
    domain = SendingDomain.objects.get()
    assert (domain.domain, domain.status, domain.verified_how) == (
        "example.com", "verified", VerifiedHow.OPERATOR)
    assert "Sending domain example.com is marked verified" in out
    user, _ = create_smtp_user(domain.account, name="First app")
    assert add_senders(user, domains_text="example.com").added_domains == ["example.com"]
    assert can_send_as(user, "hello@example.com").allowed


def test_bootstrap_demo_domain_is_the_owners_domain_or_none(db):
    from accounts.models import SendingDomain

    run("bootstrap", "--no-migrate", "--owner", "ops@corp.test")
    assert list(SendingDomain.objects.values_list("domain", flat=True)) == ["corp.test"]
    Account.objects.all().delete()
    run("bootstrap", "--no-migrate", "--owner", "x@other.test", "--demo-domain", "")
    assert not SendingDomain.objects.exists()


def test_bootstrap_is_quiet_once_an_account_exists(db):
    run("bootstrap", "--no-migrate")
    before = (Account.objects.count(), User.objects.count())
    assert run("bootstrap", "--no-migrate", "--console-url", "http://10.0.0.5:8000/") == (
        "console: http://10.0.0.5:8000\n"
    )
    assert (Account.objects.count(), User.objects.count()) == before


def test_bootstrap_takes_another_owner(db):
    out = run("bootstrap", "--no-migrate", "--owner", "Ops@Example.test")
    assert "Email:      ops@example.test" in out
    assert User.objects.filter(username="ops@example.test").exists()


def test_bootstrap_refuses_an_owner_that_is_not_an_email(db):
    with pytest.raises(CommandError, match="not an email address"):
        run("bootstrap", "--no-migrate", "--owner", "admin")
    assert not Account.objects.exists()


def test_bootstrap_migrates_a_fresh_database_then_is_idempotent(tmp_path):
    env = {"PATH": os.environ["PATH"], "DATABASE_URL": f"sqlite:///{tmp_path / 'fresh.sqlite3'}"}
    first = manage("bootstrap", env=env)
    assert first.returncode == 0, first.stderr
    assert "Email:      admin@localhost" in first.stdout
    second = manage("bootstrap", env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout == "console: http://127.0.0.1:8000\n"


# --- check --deploy ---------------------------------------------------------------------


def self_signed_certificate(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "relay.example.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "relay.crt", directory / "relay.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_check_deploy_is_clean_with_a_production_configuration(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    env = {
        "PATH": os.environ["PATH"],
        "SECRET_KEY": Fernet.generate_key().decode() + generate_password(),
        "DEBUG": "false",
        "ALLOWED_HOSTS": "smtpplus.example.test",
        "SMTPPLUS_CREDENTIAL_KEYS": Fernet.generate_key().decode(),
        "SESSION_COOKIE_SECURE": "true",
        "CSRF_COOKIE_SECURE": "true",
        "SECURE_SSL_REDIRECT": "true",
        "SECURE_HSTS_SECONDS": "31536000",
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
        "SECURE_HSTS_PRELOAD": "true",
        "DATABASE_URL": "postgres://smtpplus@db.example.test:5432/smtpplus",
        "RELAY_TLS_CERT": str(cert),
        "RELAY_TLS_KEY": str(key),
        "EMAIL_URL": "smtp+tls://alerts:secret@mail.example.test:587",
        "RELAY_UPSTREAM": "smtp://smarthost.example.test:587",
        "SMTPPLUS_CONSOLE_URL": "https://smtpplus.example.test",
    }
    done = manage("check", "--deploy", "--fail-level", "WARNING", env=env)
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues" in done.stdout


def test_check_deploy_warns_about_private_webhooks_when_they_are_allowed():
    env = {"PATH": os.environ["PATH"], "ALERTS_WEBHOOK_ALLOW_PRIVATE": "true"}
    done = manage("check", "--deploy", env=env)
    assert "smtpplus.W008" in done.stdout + done.stderr


def test_check_deploy_warns_about_every_unsafe_default():
    done = manage("check", "--deploy", env={"PATH": os.environ["PATH"]})
    report = done.stdout + done.stderr
    for check_id in ("W001", "W002", "W003", "W004", "W005", "W006", "W007"):
        assert f"smtpplus.{check_id}" in report, f"smtpplus.{check_id} missing from:\n{report}"
    assert "smtpplus.W008" not in report  # private webhooks are refused by default
