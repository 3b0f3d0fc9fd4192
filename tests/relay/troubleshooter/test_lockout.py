"""The troubleshooter shows a locked-out client as a problem and unblocks it (audited),
each situation produced over SMTP against a real relay."""

from __future__ import annotations

import base64

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuditEvent
from relay.models import EventKind, RelayEvent
from relay.troubleshooter import run_checks
from relay.troubleshooter.base import OK, PROBLEM
from relay.troubleshooter.lockout import check_lockout
from tests.conftest import login
from tests.smtp_relay import dialog

COOLOFF = [{"RELAY_AUTH_FAILURE_LIMIT": 3}]


def lock_out(relay, username: str) -> None:
    bad = b"AUTH PLAIN " + base64.b64encode(f"\0{username}\0wrong".encode())
    dialog(relay.host, relay.port, [b"EHLO c"] + [bad] * 3)
    relay.flush()


@pytest.mark.parametrize("relay", COOLOFF, indirect=True)
def test_a_locked_out_client_is_a_problem_with_its_end_time(relay, cast):
    lock_out(relay, cast.acme_smtp.username)
    result = check_lockout(cast.acme_smtp, timezone.now())
    assert result.status == PROBLEM
    until = RelayEvent.objects.filter(kind=EventKind.AUTH_COOLOFF).latest("last_seen").last_seen
    end = timezone.localtime(until + timezone.timedelta(minutes=15)).strftime("%H:%M")
    assert result.title == f"Client 127.0.0.1 is locked out until {end}"
    assert result.fix is not None
    [action] = result.fix.actions
    assert action.label == "Unblock 127.0.0.1 now" and action.post == {"client_ip": "127.0.0.1"}
    assert "lockout" in [c.key for c in run_checks(cast.acme_smtp) if c.status == PROBLEM]


def test_no_cooloff_is_ok(cast):
    assert check_lockout(cast.acme_smtp, timezone.now()).status == OK


@pytest.mark.parametrize("relay", COOLOFF, indirect=True)
def test_another_users_cooloff_is_not_this_users_problem(relay, cast):
    lock_out(relay, cast.globex_smtp.username)
    assert check_lockout(cast.acme_smtp, timezone.now()).status == OK
    assert check_lockout(cast.globex_smtp, timezone.now()).status == PROBLEM


@pytest.mark.parametrize("relay", COOLOFF, indirect=True)
def test_the_unblock_button_lifts_the_cooloff_and_is_audited(relay, cast, client):
    lock_out(relay, cast.acme_smtp.username)
    login(client, cast.bob)
    url = reverse("relay:troubleshoot_unblock", args=[cast.acme_smtp.pk])
    page = client.get(reverse("relay:troubleshoot", args=[cast.acme_smtp.pk])).content.decode()
    assert "Client 127.0.0.1 is locked out until" in page
    assert f'action="{url}"' in page
    response = client.post(url, {"client_ip": "127.0.0.1"}, follow=True)
    assert "127.0.0.1 is unblocked" in response.content.decode()
    assert check_lockout(cast.acme_smtp, timezone.now()).status == OK
    event = AuditEvent.objects.get(action="relay.cooloff_release")
    assert (event.actor, event.account, event.details) == (cast.bob, cast.acme,
                                                           {"client_ip": "127.0.0.1"})


@pytest.mark.parametrize("relay", COOLOFF, indirect=True)
def test_viewers_and_outsiders_cannot_unblock(relay, cast, client):
    lock_out(relay, cast.acme_smtp.username)
    url = reverse("relay:troubleshoot_unblock", args=[cast.acme_smtp.pk])
    assert login(client, cast.victor).post(url, {"client_ip": "127.0.0.1"}).status_code == 403
    assert login(client, cast.charlie).post(url, {"client_ip": "127.0.0.1"}).status_code == 404
    assert not RelayEvent.objects.filter(kind=EventKind.COOLOFF_RELEASED).exists()


@pytest.mark.parametrize("relay", COOLOFF, indirect=True)
def test_the_cooloff_is_listed_in_the_accounts_relay_events(relay, cast, client):
    lock_out(relay, cast.acme_smtp.username)
    page = login(client, cast.alice).get(reverse("relay:events")).content.decode()
    badge = '<span class="badge bad">Client in login cool-off</span>'
    assert badge in page
    assert badge not in login(client, cast.charlie).get(reverse("relay:events")).content.decode()
