"""Limits hold across relay processes on one database: each shares what it counted at
its limit sync (relay/smtp/limit_sync.py), here run by hand so each step is explicit."""

from __future__ import annotations

import base64
import smtplib
import socket
from datetime import timedelta

from django.utils import timezone

from accounts.models import SmtpUser
from relay.models import (
    COOLOFF_STARTED,
    ClientCooloff,
    EventKind,
    Message,
    RelayEvent,
    RelayNode,
)
from relay.troubleshooter.lockout import release_cooloff
from tests.smtp_relay import dialog, message

MANUAL = {"limits_sync_seconds": 3600.0}  # only the syncs the test runs


def sync(*relays) -> None:
    for relay in relays:
        relay.call(relay.server.limit_sync.run_once)


def fail_logins(relay, username: str, times: int) -> list[str]:
    bad = b"AUTH PLAIN " + base64.b64encode(f"\0{username}\0wrong".encode())
    return dialog(relay.host, relay.port, [b"EHLO c"] + [bad] * times)


def greeting(relay) -> str:
    return dialog(relay.host, relay.port, [])[0]


def test_failed_logins_spread_over_two_relay_processes_put_the_client_in_cooloff_on_both(
    start_relay, cast,
):
    a, b = (start_relay(auth_failure_limit=4, **MANUAL) for _ in range(2))
    # Three failures on one, one on the other: neither reaches the limit alone.
    assert fail_logins(a, cast.acme_smtp.username, 3)[-1].startswith("535 ")
    assert fail_logins(b, cast.acme_smtp.username, 1)[-1].startswith("535 ")
    assert greeting(a).startswith("220 ") and greeting(b).startswith("220 ")
    sync(a, b)  # b's sync sees four failures in all and starts the cool-off
    assert greeting(b).startswith("421 4.7.0")
    sync(a)
    assert greeting(a).startswith("421 4.7.0")
    cooloff = ClientCooloff.objects.get(client_ip="127.0.0.1")
    assert (cooloff.account, cooloff.smtp_user) == (cast.acme, cast.acme_smtp)
    b.flush()
    started = RelayEvent.objects.get(kind=EventKind.AUTH_COOLOFF,
                                     reason__startswith=COOLOFF_STARTED)
    assert started.account == cast.acme


def test_a_cooloff_started_on_one_relay_process_applies_on_the_others(start_relay, cast):
    a, b = (start_relay(auth_failure_limit=3, **MANUAL) for _ in range(2))
    assert fail_logins(a, cast.acme_smtp.username, 3)[-1].startswith(
        "421 4.7.0 Too many failed logins")
    assert greeting(b).startswith("220 ")
    sync(a, b)
    assert greeting(b).startswith("421 4.7.0")


def test_unblock_now_lifts_a_shared_cooloff_and_the_failures_behind_it(start_relay, cast):
    a, b = (start_relay(auth_failure_limit=3, **MANUAL) for _ in range(2))
    fail_logins(a, cast.acme_smtp.username, 2)
    fail_logins(b, cast.acme_smtp.username, 1)
    sync(a, b, a)
    assert greeting(a).startswith("421 ") and greeting(b).startswith("421 ")
    b.flush()
    assert release_cooloff(cast.acme, "127.0.0.1")
    sync(a, b)
    assert greeting(a).startswith("220 ") and greeting(b).startswith("220 ")
    # The failures before the release are forgotten: one more is not a new cool-off.
    fail_logins(a, cast.acme_smtp.username, 1)
    sync(a, b)
    assert greeting(a).startswith("220 ") and greeting(b).startswith("220 ")


def login(relay, cast) -> smtplib.SMTP:
    smtp = smtplib.SMTP(relay.host, relay.port, timeout=10)
    smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    return smtp


def test_a_users_hourly_limit_holds_across_sessions_on_two_relay_processes(start_relay, cast):
    SmtpUser.objects.filter(pk=cast.acme_smtp.pk).update(hourly_limit=5)
    a, b = (start_relay(**MANUAL) for _ in range(2))
    with login(a, cast) as on_a, login(b, cast) as on_b:
        for _ in range(3):
            assert on_a.sendmail("shop@acme.test", ["x@example.net"], message()) == {}
        sync(b)  # b learns of a's three messages
        for _ in range(2):
            assert on_b.sendmail("shop@acme.test", ["x@example.net"], message()) == {}
        assert on_b.mail("shop@acme.test")[0] == 451
        on_b.rset()
        sync(a)
        assert on_a.mail("shop@acme.test")[0] == 451
    assert Message.objects.filter(smtp_user=cast.acme_smtp).count() == 5


def test_the_connection_cap_per_ip_counts_the_connections_on_every_relay_process(start_relay):
    a, b = (start_relay(max_connections_per_ip=2, **MANUAL) for _ in range(2))
    held = [socket.create_connection((r.host, r.port), timeout=5) for r in (a, b)]
    try:
        for sock in held:
            assert sock.recv(100).startswith(b"220 ")
        assert greeting(a).startswith("220 ")  # a alone holds one of two
        sync(a, b, a)
        assert greeting(a) == "421 4.7.0 Too many connections from your address, try again later"
        assert greeting(b).startswith("421 4.7.0 Too many connections")
    finally:
        for sock in held:
            sock.close()


def test_a_relay_process_that_stopped_syncing_no_longer_counts_its_connections(
    start_relay,
):
    a, b = (start_relay(max_connections_per_ip=1, **MANUAL) for _ in range(2))
    held = socket.create_connection((b.host, b.port), timeout=5)
    try:
        assert held.recv(100).startswith(b"220 ")
        sync(b, a)
        assert greeting(a).startswith("421 ")
        # b's last sync is long past (killed, say): its connections count no more.
        RelayNode.objects.filter(node_id=b.server.node_id).update(
            synced=timezone.now() - timedelta(minutes=5))
        sync(a)
        assert greeting(a).startswith("220 ")
    finally:
        held.close()
