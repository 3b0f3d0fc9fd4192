"""Listening on port lists, skipping busy ports, and what the relay reports to the console."""

from __future__ import annotations

import random
import smtplib
import socket

import pytest

from relay import nodes
from relay.listen import Listener
from relay.models import ConnectionStat, RelayNode
from relay.smtp.server import NothingBound
from tests.smtp_relay import dialog, message, running_relay


def three_free_ports() -> tuple[int, list[socket.socket]]:
    """A base port P with P, P+1, P+2 free; returns P and sockets holding them."""
    for _ in range(50):
        base = random.randint(20000, 60000)
        held = []
        try:
            for port in range(base, base + 3):
                s = socket.socket()
                held.append(s)
                s.bind(("127.0.0.1", port))
            return base, held
        except OSError:
            for s in held:
                s.close()
    raise RuntimeError("no three consecutive free ports")


def test_a_busy_port_in_a_range_is_skipped_and_the_others_serve(transactional_db, caplog):
    base, held = three_free_ports()
    busy = held[1]
    busy.listen()
    held[0].close()
    held[2].close()
    try:
        with running_relay(RELAY_LISTEN=f"127.0.0.1:{base}-{base + 2}") as relay:
            assert [x.port for x in relay.listeners] == [base, base + 2]
            for port in (base, base + 2):
                assert dialog("127.0.0.1", port, [b"QUIT"])[0].startswith("220 ")
    finally:
        busy.close()
    assert f"cannot listen on 127.0.0.1:{base + 1} (port busy); skipped" in caplog.text


def test_it_fails_clearly_when_no_port_can_be_bound(transactional_db):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(NothingBound), running_relay(RELAY_LISTEN=f"127.0.0.1:{port}"):
            pass


def test_the_node_reports_its_ports_and_tls_modes_and_is_marked_stopped(relay):
    node = RelayNode.objects.get(node_id=relay.server.node_id)
    assert node.listeners == [{"host": "127.0.0.1", "port": relay.port, "tls": "none"}]
    assert node.stopped is None
    relay.stop()
    node.refresh_from_db()
    assert node.stopped is not None


def test_the_node_goes_by_its_name_and_reports_its_version_and_messages_of_the_last_minute(
    start_relay, cast,
):
    relay = start_relay(node_name="edge-1")
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        for _ in range(2):
            assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
    relay.flush()
    node = RelayNode.objects.get(node_id="edge-1")
    assert (node.version, node.accepted_last_minute) == (nodes.product_version(), 2)
    assert node.version


def test_accepted_messages_leave_the_last_minute_count_after_a_minute():
    now = [1000.0]
    counter = nodes.ConnectionCounter(clock=lambda: now[0])
    counter.accepted()
    now[0] += 30
    counter.accepted()
    assert counter.accepted_last_minute() == 2
    now[0] += 31
    assert counter.accepted_last_minute() == 1


def test_connections_and_logins_are_counted_per_port_and_user(relay, cast):
    dialog(relay.host, relay.port, [b"QUIT"])
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    relay.flush()
    anonymous = ConnectionStat.objects.get(port=relay.port, smtp_user=None)
    assert anonymous.connections == 2
    mine = ConnectionStat.objects.get(port=relay.port, smtp_user=cast.acme_smtp)
    assert (mine.connections, mine.logins) == (1, 1)
    # A second flush adds to the same hourly rows.
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    relay.flush()
    mine.refresh_from_db()
    assert mine.logins == 2
    assert ConnectionStat.objects.count() == 2


def test_a_heartbeat_refreshes_the_node_and_brings_back_a_deleted_row_with_its_ports(db):
    listeners = [Listener("127.0.0.1", 2525, "none")]
    nodes.register_node("mx1:7", listeners)
    RelayNode.objects.filter(node_id="mx1:7").update(stopped="2026-01-01T00:00:00Z")
    nodes.heartbeat("mx1:7", listeners, {})
    node = RelayNode.objects.get(node_id="mx1:7")
    assert node.stopped is None
    assert node.listeners == [{"host": "127.0.0.1", "port": 2525, "tls": "none"}]
    node.delete()
    nodes.heartbeat("mx1:7", listeners, {})
    node = RelayNode.objects.get(node_id="mx1:7")
    assert node.listeners == [{"host": "127.0.0.1", "port": 2525, "tls": "none"}]
