"""The console's failed-login limits hold across console processes (they are counted in
the database), per client network (an IPv4 address, an IPv6 /64) and per username from
every network together; a browser that logged in as a username before is not locked out
by failures under that username elsewhere, and every lock ends with its window."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from accounts.login import client_network
from accounts.models import LoginFailureCount
from tests.conftest import PASSWORD
from tests.fake_upstream import database_url_for_subprocess

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


def attempt(client: Client, ip: str, password: str, username: str = "alice@acme.test") -> str:
    r = client.post("/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)
    if r.status_code == 302:
        return "in"
    page = r.content.decode()
    if "Too many failed logins for this username" in page:
        return "throttled-username"
    if "Too many failed logins from your address" in page:
        return "throttled"
    assert "did not match" in page
    return "refused"


@pytest.mark.parametrize(("ip", "network"), [
    ("198.51.100.7", "198.51.100.7"),
    ("::ffff:198.51.100.7", "198.51.100.7"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"),
    (None, "-"), ("not an address", "-"),
])
def test_a_client_counts_as_its_ipv4_address_or_its_ipv6_slash_64(ip, network):
    assert client_network(ip) == network


CHILD = """
import json, sys
import django
django.setup()
from django.test.utils import setup_test_environment
setup_test_environment()
from django.test import Client
client = Client()
out = []
for password in sys.argv[2:]:
    r = client.post("/login/", {"username": "alice@acme.test", "password": password},
                    REMOTE_ADDR=sys.argv[1])
    page = r.content.decode()
    out.append("in" if r.status_code == 302 else
               "throttled" if "Too many failed logins" in page else "refused")
print(json.dumps(out))
"""


def console_process(ip: str, *passwords: str) -> list[str]:
    """A console process of its own (its own memory) on the test database."""
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(),
           "DJANGO_SETTINGS_MODULE": "smtpplus.settings",
           "CONSOLE_LOGIN_FAILURES_PER_USER": "3", "CONSOLE_LOGIN_FAILURES_PER_IP": "20"}
    done = subprocess.run([sys.executable, "-c", CHILD, ip, *passwords], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.django_db(transaction=True)
def test_failures_in_two_console_processes_add_up(cast):
    assert console_process("198.51.100.7", "wrong", "wrong") == ["refused", "refused"]
    # The second process has never seen a failure itself; the limit (3) holds anyway.
    assert console_process("198.51.100.7", "wrong", PASSWORD) == ["refused", "throttled"]
    assert console_process("198.51.100.8", "wrong") == ["refused"]  # another address


def test_two_clients_count_on_the_same_rows_whatever_the_process_memory_holds(cast, settings):
    settings.CONSOLE_LOGIN_FAILURES_PER_USER = 3
    first, second = Client(), Client()
    assert attempt(first, "198.51.100.7", "wrong") == "refused"
    assert attempt(second, "198.51.100.7", "wrong") == "refused"
    cache.clear()  # nothing of the count lives in a process's cache
    assert attempt(first, "198.51.100.7", "wrong") == "refused"
    assert attempt(second, "198.51.100.7", PASSWORD) == "throttled"
    assert LoginFailureCount.objects.filter(key="net:198.51.100.7", failures=3).exists()


def test_failures_from_many_addresses_of_one_ipv6_slash_64_lock_that_network(client, cast, settings):
    settings.CONSOLE_LOGIN_FAILURES_PER_IP = 4
    for i in range(4):
        assert attempt(client, f"2001:db8:1:2::{i + 1:x}", "wrong", f"user{i}@acme.test") == "refused"
    assert attempt(client, "2001:db8:1:2:ffff:ffff:ffff:fffe", PASSWORD) == "throttled"
    # The neighbouring /64 is another network.
    assert attempt(client, "2001:db8:1:3::1", PASSWORD) == "in"


def test_one_username_from_many_addresses_of_one_slash_64_is_limited_as_from_one(client, cast, settings):
    settings.CONSOLE_LOGIN_FAILURES_PER_USER = 3
    for i in range(3):
        assert attempt(client, f"2001:db8:9:9:{i}::1", "wrong") == "refused"
    assert attempt(client, "2001:db8:9:9:abcd::1", PASSWORD) == "throttled"


def test_an_ipv4_mapped_address_is_its_ipv4_address(client, cast, settings):
    settings.CONSOLE_LOGIN_FAILURES_PER_USER = 2
    assert attempt(client, "198.51.100.7", "wrong") == "refused"
    assert attempt(client, "::ffff:198.51.100.7", "wrong") == "refused"
    assert attempt(client, "198.51.100.7", PASSWORD) == "throttled"


@pytest.fixture
def username_limit(settings):
    settings.CONSOLE_LOGIN_FAILURES_PER_USERNAME = 6
    settings.CONSOLE_LOGIN_FAILURES_PER_USER = 5
    settings.CONSOLE_LOGIN_FAILURES_PER_IP = 20


def fail_from_many_networks(username: str = "alice@acme.test", count: int = 6) -> None:
    attacker = Client()
    for i in range(count):
        network = f"203.0.113.{i + 1}" if i % 2 else f"2001:db8:{i:x}::1"
        assert attempt(attacker, network, "wrong", username) == "refused"


def test_failures_for_one_username_from_many_networks_lock_that_username(cast, username_limit):
    fail_from_many_networks()
    stranger = Client()
    assert attempt(stranger, "192.0.2.50", PASSWORD) == "throttled-username"
    # Only that username: another member from the same address logs in.
    assert attempt(stranger, "192.0.2.50", PASSWORD, "bob@acme.test") == "in"


def test_the_username_lock_spares_a_browser_that_logged_in_as_that_username_before(cast, username_limit):
    alices_browser = Client()
    assert attempt(alices_browser, "192.0.2.10", PASSWORD) == "in"
    alices_browser.post("/logout/")
    fail_from_many_networks()
    assert attempt(alices_browser, "192.0.2.10", PASSWORD) == "in"
    # Even from another network (a laptop on the road).
    alices_browser.post("/logout/")
    assert attempt(alices_browser, "2001:db8:ffff::7", PASSWORD) == "in"


def test_a_known_browser_is_still_held_by_the_per_network_limits(cast, username_limit, settings):
    settings.CONSOLE_LOGIN_FAILURES_PER_USER = 2
    browser = Client()
    assert attempt(browser, "192.0.2.10", PASSWORD) == "in"
    browser.post("/logout/")
    assert attempt(browser, "192.0.2.10", "wrong") == "refused"
    assert attempt(browser, "192.0.2.10", "wrong") == "refused"
    assert attempt(browser, "192.0.2.10", PASSWORD) == "throttled"


def test_the_known_browser_cookie_is_for_one_username_and_cannot_be_forged(cast, username_limit):
    alices_browser = Client()
    assert attempt(alices_browser, "192.0.2.10", PASSWORD) == "in"
    alices_browser.post("/logout/")
    fail_from_many_networks("bob@acme.test")
    assert attempt(alices_browser, "192.0.2.10", PASSWORD, "bob@acme.test") == "throttled-username"
    forger = Client()
    forger.cookies["smtpplus_known_login"] = alices_browser.cookies["smtpplus_known_login"].value + "x"
    fail_from_many_networks()
    assert attempt(forger, "192.0.2.11", PASSWORD) == "throttled-username"


def test_the_cookie_is_http_only_and_lax(cast):
    browser = Client()
    assert attempt(browser, "192.0.2.10", PASSWORD) == "in"
    morsel = browser.cookies["smtpplus_known_login"]
    assert morsel["httponly"] and morsel["samesite"] == "Lax"
    assert "alice" not in morsel.value


def test_every_lock_ends_with_its_window(cast, username_limit, settings):
    settings.CONSOLE_LOGIN_FAILURES_PER_USER = 2
    client = Client()
    assert attempt(client, "192.0.2.50", "wrong") == "refused"
    assert attempt(client, "192.0.2.50", "wrong") == "refused"
    fail_from_many_networks(count=4)  # 6 for the username in all
    assert attempt(client, "192.0.2.50", PASSWORD) == "throttled"
    assert attempt(Client(), "192.0.2.51", PASSWORD) == "throttled-username"
    # The window (CONSOLE_LOGIN_WINDOW, from the first failure) ends...
    LoginFailureCount.objects.update(window_ends=timezone.now() - timedelta(seconds=1))
    assert attempt(client, "192.0.2.50", PASSWORD) == "in"
    # ...and the expired counts are gone with it: the next failure starts from one.
    client.post("/logout/")
    assert attempt(Client(), "192.0.2.99", "wrong") == "refused"
    assert set(LoginFailureCount.objects.values_list("failures", flat=True)) == {1}


def test_the_table_holds_no_usernames(cast):
    attempt(Client(), "192.0.2.50", "wrong")
    keys = list(LoginFailureCount.objects.values_list("key", flat=True))
    assert len(keys) == 3 and not any("alice" in key for key in keys)
