"""Upgrading to sending domains: what was authorized keeps sending."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.models import AuthorizedEmail, DomainStatus, SendingDomain, VerifiedHow

BEFORE = [("accounts", "0004_api_keys")]
AFTER = [("accounts", "0005_sending_domains")]


@pytest.mark.django_db(transaction=True)
def test_domains_authorized_before_the_upgrade_become_verified_sending_domains():
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        apps = executor.loader.project_state(BEFORE).apps
        Account = apps.get_model("accounts", "Account")
        SmtpUser = apps.get_model("accounts", "SmtpUser")
        acme = Account.objects.create(name="Acme", slug="acme")
        globex = Account.objects.create(name="Globex", slug="globex")
        shop = SmtpUser.objects.create(account=acme, username="smtp-shop", password_encrypted="x",
                                       password_digest="x")
        crm = SmtpUser.objects.create(account=acme, username="smtp-crm", password_encrypted="x",
                                      password_digest="x")
        other = SmtpUser.objects.create(account=globex, username="smtp-gx",
                                        password_encrypted="x", password_digest="x")
        shop.authorized_domains.create(domain="acme.example")
        crm.authorized_domains.create(domain="acme.example", include_subdomains=True)
        crm.authorized_emails.create(email="ops@gmail.example")
        # Two accounts had authorized the same domain: both keep sending after the upgrade.
        other.authorized_domains.create(domain="acme.example")
        MigrationExecutor(connection).migrate(AFTER)
    finally:
        MigrationExecutor(connection).migrate(
            MigrationExecutor(connection).loader.graph.leaf_nodes())
    rows = sorted(SendingDomain.objects.values_list(
        "account__slug", "domain", "status", "verified_how", "include_subdomains"))
    assert rows == [
        ("acme", "acme.example", DomainStatus.VERIFIED, VerifiedHow.UPGRADE, True),
        ("globex", "acme.example", DomainStatus.VERIFIED, VerifiedHow.UPGRADE, False),
    ]
    assert all(len(d.token) == 32 for d in SendingDomain.objects.all())
    email = AuthorizedEmail.objects.get()
    assert email.confirmed_at is not None and email.confirmed_how == "upgrade"
