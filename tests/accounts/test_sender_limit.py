"""An SMTP+ user has at most SMTPPLUS_MAX_SENDERS_PER_USER authorized domains and
addresses together; past it nothing is added and the message names the limit, whichever
way the senders are added (console, troubleshooter, CLI)."""

from __future__ import annotations

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from accounts.actions import senders
from accounts.actions.smtp_users import create_smtp_user
from accounts.models import AuthorizedDomain, AuthorizedEmail
from tests.fake_upstream import database_url_for_subprocess
from tests.senders import own

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _acme_owns_the_domains(cast):
    """Acme owns the domains these tests authorize (only owned domains can be)."""
    for domain in ('a.test', 'b.test', 'c.test', 'd.test', 'e.test'):
        own(cast.acme.pk, domain, include_subdomains=True)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def shop(cast, settings):
    settings.SMTPPLUS_MAX_SENDERS_PER_USER = 4
    user, _ = create_smtp_user(cast.acme, name="Shop")
    senders.add_senders(user, domains_text="a.test b.test", emails_text="x@c.test")
    return user


def count(user) -> int:
    return user.authorized_domains.count() + user.authorized_emails.count()


def test_the_default_limit_is_1000():
    assert django_settings.SMTPPLUS_MAX_SENDERS_PER_USER == 1000


def test_it_refuses_to_add_senders_past_the_limit_and_adds_none_of_them(shop):
    with pytest.raises(senders.TooManySenders) as caught:
        senders.add_senders(shop, domains_text="d.test", emails_text="y@e.test")
    message = str(caught.value)
    assert "at most 4 authorized senders" in message
    assert f"{shop.username} has 3 and this would add 2" in message
    assert count(shop) == 3
    assert not AuthorizedDomain.objects.filter(domain="d.test").exists()


def test_it_adds_up_to_the_limit(shop):
    senders.add_senders(shop, emails_text="y@e.test")
    assert count(shop) == 4


def test_entries_already_authorized_do_not_count_again(shop):
    senders.add_senders(shop, domains_text="a.test b.test d.test", emails_text="X@c.test")
    assert count(shop) == 4
    # Full now: repeating what is there is still fine, anything new is not.
    senders.add_senders(shop, domains_text="a.test")
    with pytest.raises(senders.TooManySenders):
        senders.add_senders(shop, emails_text="z@e.test")


def test_the_limit_is_per_smtp_user(shop, cast):
    other, _ = create_smtp_user(cast.acme, name="Other")
    senders.add_senders(other, domains_text="a.test b.test c.test d.test")
    assert count(other) == 4


def test_the_console_form_says_the_limit_and_keeps_the_entries(alice_client, shop):
    r = alice_client.post(
        reverse("accounts:smtpuser_senders_add", args=[shop.pk]),
        {"domains": "d.test; e.test", "emails": ""},
    )
    assert r.status_code == 400
    page = r.content.decode()
    assert "Not saved: an SMTP+ user can have at most 4 authorized senders" in page
    assert "d.test; e.test" in page  # left in the box
    assert count(shop) == 3


def test_the_troubleshooter_button_obeys_the_limit(alice_client, shop):
    senders.add_senders(shop, domains_text="d.test")
    r = alice_client.post(
        reverse("relay:troubleshoot_authorize", args=[shop.pk]),
        {"kind": "email", "value": "new@f.test"}, follow=True,
    )
    assert "Could not authorize new@f.test: an SMTP+ user can have at most 4" in r.content.decode()
    assert not AuthorizedEmail.objects.filter(email="new@f.test").exists()


def test_the_cli_refuses_with_the_limit_and_its_setting(shop):
    with pytest.raises(CommandError) as caught:
        call_command("smtpuser", "authorize", shop.username, "--domains", "d.test e.test",
                     stdout=StringIO(), stderr=StringIO())
    assert "at most 4 authorized senders" in str(caught.value)
    assert "SMTPPLUS_MAX_SENDERS_PER_USER" in str(caught.value)
    assert count(shop) == 3


@pytest.mark.django_db(transaction=True)
def test_from_the_shell_the_limit_comes_from_the_environment(cast):
    user, _ = create_smtp_user(cast.acme, name="Shell")
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(),
           "SMTPPLUS_MAX_SENDERS_PER_USER": "2"}
    done = subprocess.run(
        [sys.executable, "manage.py", "smtpuser", "authorize", user.username,
         "--domains", "a.test b.test", "--emails", "x@c.test"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 1
    assert "at most 2 authorized senders" in done.stderr
    assert count(user) == 0
