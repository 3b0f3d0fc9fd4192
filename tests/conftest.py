"""The cast: alice owns Acme, bob is an Acme admin, victor an Acme viewer, and charlie
owns Globex — an outsider who must see nothing of Acme's."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import User
from django.test import Client

from accounts.actions.smtp_users import create_account, create_smtp_user
from accounts.models import Account, Membership, Role, SmtpUser
from tests.dns_server import DnsServer
from tests.fake_upstream import upstream  # noqa: F401  (fixture for every test folder)
from tests.senders import authorize
from tests.smtp_relay import relay, start_relay  # noqa: F401  (fixtures for every test folder)

PASSWORD = "correct horse battery staple"


@dataclass
class Cast:
    acme: Account
    globex: Account
    alice: User  # Acme owner
    bob: User  # Acme admin
    victor: User  # Acme viewer
    charlie: User  # Globex owner (outsider)
    acme_smtp: SmtpUser
    acme_smtp_password: str
    globex_smtp: SmtpUser
    globex_smtp_password: str


@pytest.fixture
def cast(db) -> Cast:
    acme, alice, _ = create_account("Acme", "alice@acme.test", password=PASSWORD)
    globex, charlie, _ = create_account("Globex", "charlie@globex.test", password=PASSWORD)
    bob = User.objects.create_user("bob@acme.test", "bob@acme.test", PASSWORD)
    Membership.objects.create(account=acme, user=bob, role=Role.ADMIN)
    victor = User.objects.create_user("victor@acme.test", "victor@acme.test", PASSWORD)
    Membership.objects.create(account=acme, user=victor, role=Role.VIEWER)
    acme_smtp, acme_pw = create_smtp_user(acme, name="Acme web shop")
    authorize(acme_smtp, "acme.test")
    globex_smtp, globex_pw = create_smtp_user(globex, name="Globex CRM")
    authorize(globex_smtp, "globex.test")
    return Cast(acme, globex, alice, bob, victor, charlie, acme_smtp, acme_pw, globex_smtp, globex_pw)


def login(client: Client, user: User) -> Client:
    client.force_login(user)
    return client


@pytest.fixture
def alice_client(client: Client, cast: Cast) -> Client:
    return login(client, cast.alice)


@pytest.fixture(scope="session")
def _knot_server():
    server = DnsServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def dns_server(_knot_server, settings) -> DnsServer:
    """The suite's real DNS server (Knot), and every lookup of the product pointed at it."""
    settings.SMTPPLUS_DNS_RESOLVERS = [_knot_server.address]
    settings.SMTPPLUS_DNS_TIMEOUT = 3.0
    return _knot_server


@pytest.fixture(autouse=True)
def _no_dkim_keys_from_another_test():
    # The delivery worker's key cache lives as long as the process; a test's rows (and
    # their ids) do not.
    from relay.delivery import signing

    signing.keys.clear()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # Console passwords in tests need not resist brute force; PBKDF2 costs ~0.3 s each.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _on_postgres() -> bool:
    from django.conf import settings as django_settings

    return django_settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def pytest_collection_modifyitems(config, items):
    # Browser tests run last: Playwright's sync API keeps an event loop on the main
    # thread for the session, which would break later tests that call asyncio.run().
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)
    # Tests marked `postgres` (row locking, several workers) only mean something there:
    # on SQLite they are deselected, not skipped; CI runs the suite on both databases.
    if _on_postgres():
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("postgres") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_sessionfinish(session, exitstatus):
    # In CI nothing may skip silently: a test that needs a missing tool fails the run.
    import os

    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if os.environ.get("CI") and reporter is not None and reporter.stats.get("skipped"):
        reporter.write_line("CI: skipped tests are not allowed (missing tool?)", red=True)
        session.exitstatus = 1
