"""The relay checks: is it running, where it listens, and has the client reached it."""

from __future__ import annotations

import pytest
from django.utils import timezone

from relay.troubleshooter.base import NODATA, OK, PROBLEM
from relay.troubleshooter.relay import check_port_open, check_port_supported, check_relay_running
from tests.relay.troubleshooter.helpers import (
    failed_login,
    logged_in,
    run,
    send,
    text,
)


# --- ports -------------------------------------------------------------------------------
def test_a_user_never_seen_gets_the_port_advice_and_the_no_alert_warning(relay, cast):
    result = run(check_port_open, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert result.evidence[0].startswith("No connection seen from this user since ")
    assert f"The relay listens on {relay.port} (no TLS), as reported by the running relay." \
        in text(result)
    assert f"Try port {relay.port}" in result.fix.text
    assert "no alert can be sent: the message never reached the relay" in result.fix.text


def test_port_advice_suggests_2525_when_the_relay_listens_there(cast, start_relay):
    try:
        relay = start_relay(RELAY_LISTEN="127.0.0.1:0,2525")
    except Exception:  # 2525 taken by another run on this machine
        pytest.skip("port 2525 is busy")
    if 2525 not in [x.port for x in relay.listeners]:
        pytest.skip("port 2525 is busy")
    result = run(check_port_open, relay, cast.acme_smtp)
    assert "Try port 2525 or another port the relay listens on" in result.fix.text


def test_a_connection_from_the_user_makes_the_port_check_ok(relay, cast):
    with logged_in(relay, cast.acme_smtp, cast.acme_smtp_password):
        pass
    result = run(check_port_open, relay, cast.acme_smtp)
    assert result.status == OK
    assert f"on port {relay.port}" in result.evidence[0]


def test_a_failed_login_also_counts_as_a_connection_seen(relay, cast):
    failed_login(relay, cast.acme_smtp.username)
    assert run(check_port_open, relay, cast.acme_smtp).status == OK


def test_supported_ports_list_the_connections_seen_on_each(relay, cast):
    assert run(check_port_supported, relay, cast.acme_smtp).status == NODATA
    for _ in range(2):
        with logged_in(relay, cast.acme_smtp, cast.acme_smtp_password):
            pass
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "x@example.org")
    result = run(check_port_supported, relay, cast.acme_smtp)
    assert result.status == OK
    assert result.evidence[0] == f"Supported ports: {relay.port} (no TLS)."
    assert f"Port {relay.port} (supported): 3 logins, 1 refused command" in result.evidence


def test_a_port_the_relay_no_longer_listens_on_is_a_problem(cast, start_relay):
    old = start_relay()
    with logged_in(old, cast.acme_smtp, cast.acme_smtp_password):
        pass
    old.flush()
    old.stop()
    new = start_relay()
    result = run(check_port_supported, new, cast.acme_smtp)
    assert result.status == PROBLEM
    assert f"Port {old.port} (NOT listened on any more): 1 login" in text(result)
    assert f"for example {new.port}" in result.fix.text


# --- relay running -----------------------------------------------------------------------
def test_the_relay_check_follows_the_heartbeat(cast, start_relay):
    result = check_relay_running(cast.acme_smtp, timezone.now())
    assert result.status == PROBLEM
    assert "No relay process has ever started" in text(result)
    relay = start_relay()
    result = check_relay_running(cast.acme_smtp, timezone.now())
    assert result.status == OK
    assert f"listening on {relay.port}" in text(result)
    relay.stop()
    result = check_relay_running(cast.acme_smtp, timezone.now())
    assert result.status == PROBLEM
    assert "stopped at" in text(result)
    assert "manage.py runrelay" in result.fix.text
