"""The failed-login cool-off belongs to the account whose username caused it, and an
admin's "unblock now" lifts it on every relay process."""

from __future__ import annotations

import base64
import time

from django.utils import timezone

from accounts.models import AuditEvent
from relay.models import COOLOFF_STARTED, EventKind, RelayEvent
from relay.troubleshooter.lockout import active_cooloffs, release_cooloff
from tests.smtp_relay import dialog

LIMIT = 3


def lock_out(relay, username: str) -> None:
    bad = b"AUTH PLAIN " + base64.b64encode(f"\0{username}\0wrong".encode())
    replies = dialog(relay.host, relay.port, [b"EHLO c"] + [bad] * LIMIT)
    assert replies[-1].startswith("421 4.7.0 Too many failed logins")


def greeting(relay) -> str:
    return dialog(relay.host, relay.port, [])[0]


def wait_for(predicate, what: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def test_a_cooloff_started_by_an_accounts_username_is_that_accounts_event(start_relay, cast):
    relay = start_relay(auth_failure_limit=LIMIT)
    lock_out(relay, cast.acme_smtp.username)
    assert greeting(relay).startswith("421 4.7.0")
    relay.flush()
    events = RelayEvent.objects.filter(kind=EventKind.AUTH_COOLOFF)
    started = events.get(reason__startswith=COOLOFF_STARTED)
    assert (started.account, started.smtp_user) == (cast.acme, cast.acme_smtp)
    assert started.client_ip == "127.0.0.1"
    # The connections refused during the cool-off are the account's too.
    refused = events.exclude(pk=started.pk).get()
    assert (refused.account, refused.smtp_user, refused.username) == (
        cast.acme, cast.acme_smtp, cast.acme_smtp.username)
    assert [c.client_ip for c in active_cooloffs(cast.acme, cast.acme_smtp, timezone.now())] == [
        "127.0.0.1"]
    assert active_cooloffs(cast.globex, None, timezone.now()) == []


def test_a_cooloff_by_an_unknown_username_belongs_to_no_account(start_relay, cast):
    relay = start_relay(auth_failure_limit=LIMIT)
    lock_out(relay, "smtp-nobody")
    relay.flush()
    started = RelayEvent.objects.get(kind=EventKind.AUTH_COOLOFF, reason__startswith=COOLOFF_STARTED)
    assert started.account is None and started.username == "smtp-nobody"


def test_unblock_now_lifts_the_cooloff_on_every_relay_process(start_relay, cast):
    relays = [start_relay(auth_failure_limit=LIMIT) for _ in range(2)]
    for relay in relays:
        lock_out(relay, cast.acme_smtp.username)
        assert greeting(relay).startswith("421 4.7.0")
        relay.flush()

    assert release_cooloff(cast.acme, "127.0.0.1")
    for relay in relays:
        wait_for(lambda relay=relay: greeting(relay).startswith("220 "),
                 "a relay process kept the cool-off after the unblock")
    # And the right password works at once.
    blob = base64.b64encode(f"\0{cast.acme_smtp.username}\0{cast.acme_smtp_password}".encode())
    for relay in relays:
        replies = dialog(relay.host, relay.port, [b"EHLO c", b"AUTH PLAIN " + blob])
        assert replies[2] == "235 2.7.0 Authentication successful"
    assert active_cooloffs(cast.acme, cast.acme_smtp, timezone.now()) == []
    assert AuditEvent.objects.filter(action="relay.cooloff_release", account=cast.acme).count() == 1


def test_another_account_cannot_unblock_a_cooloff_it_did_not_cause(start_relay, cast):
    relay = start_relay(auth_failure_limit=LIMIT)
    lock_out(relay, cast.acme_smtp.username)
    relay.flush()
    assert not release_cooloff(cast.globex, "127.0.0.1")
    assert not RelayEvent.objects.filter(kind=EventKind.COOLOFF_RELEASED).exists()
    assert greeting(relay).startswith("421 4.7.0")


