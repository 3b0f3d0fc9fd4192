"""Two relay nodes on one PostgreSQL behave as one relay.

Each node is a real `manage.py runrelay` process (its own listening address on loopback,
its own RELAY_NODE_NAME, its own delivery worker), both against the test database, with
one real upstream behind them. They show that failed logins spread over both nodes put
the client into a cool-off on both (and "unblock now" lifts it on both), that a user's
hourly limit holds across sessions on both nodes, and that `kill -9` of one node under
load loses no message it answered 250 for: its clients go to the other node, and what
its delivery worker had leased is delivered by the other one: once, or twice for a message
that worker had mid-send at the kill.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings

from accounts.models import SmtpUser
from relay.models import Attempt, Message, Recipient, RecipientStatus, RelayNode
from relay.troubleshooter.lockout import release_cooloff
from tests.fake_upstream import FakeUpstream, database_url_for_subprocess
from tests.smtp_relay import message

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

MANAGE = Path(settings.BASE_DIR) / "manage.py"
CLIENT = "127.0.0.1"  # every client connection comes from here, whichever node it reaches
LEASE_SECONDS = 4


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


@dataclass
class Node:
    name: str
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def greeting(self) -> str:
        with socket.create_connection((self.host, self.port), timeout=10,
                                      source_address=(CLIENT, 0)) as sock:
            return sock.recv(512).decode()

    def listening(self) -> bool:
        try:
            return self.greeting().startswith("220 ")
        except OSError:
            return False

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP(self.host, self.port, timeout=20, source_address=(CLIENT, 0))


def start_node(tmp_path: Path, name: str, host: str, upstream: FakeUpstream,
               *args: str, database_url: str = "", wait: bool = True, **env: str) -> Node:
    """`manage.py runrelay --no-alerts *args` as node `name` on `host` (a free port);
    `env` adds settings. With `wait`, once it answers with its greeting."""
    if not wait:
        return _start_node(tmp_path, name, host, upstream, args, database_url, env)
    return start_nodes(tmp_path, upstream, [(name, host)], *args, database_url=database_url,
                       **env)[0]


def start_nodes(tmp_path: Path, upstream: FakeUpstream, names: list[tuple[str, str]],
                *args: str, database_url: str = "", **env: str) -> list[Node]:
    """Nodes (name, host) started side by side, as `start_node`; once all listen."""
    nodes = [_start_node(tmp_path, name, host, upstream, args, database_url, env)
             for name, host in names]
    return await_nodes(tmp_path, upstream, nodes, *args, database_url=database_url, **env)


def await_nodes(tmp_path: Path, upstream: FakeUpstream, nodes: list[Node], *args: str,
                database_url: str = "", **env: str) -> list[Node]:
    """The nodes started with `start_node(wait=False)` (and these arguments), once all
    listen; one whose free port was taken in between is started again on another."""
    nodes = list(nodes)
    for _ in range(3):

        def started() -> bool:
            return all(node.proc.poll() is not None or node.listening() for node in nodes)

        wait_until(started, "a node did not start listening")
        if all(node.proc.poll() is None for node in nodes):
            return nodes
        for i, node in enumerate(nodes):
            if node.proc.poll() is not None:
                # The free port was taken in between (by another process's connection).
                assert "(port busy)" in node.log.read_text(), node.log.read_text()
                nodes[i] = _start_node(tmp_path, node.name, node.host, upstream, args,
                                       database_url, env)
    raise AssertionError("no free port for a node")


def _start_node(tmp_path: Path, name: str, host: str, upstream: FakeUpstream,
                args: tuple[str, ...], database_url: str, env: dict[str, str]) -> Node:
    port = free_port(host)
    log = tmp_path / f"{name}.log"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url or database_url_for_subprocess(),
        "RELAY_NODE_NAME": name,
        "RELAY_HOSTNAME": f"{name}.test",
        "RELAY_LISTEN": f"{host}:{port}",
        "RELAY_LISTEN_TLS": "",
        "RELAY_TLS_CERT": "",
        "RELAY_AUTH_FAILURE_LIMIT": "4",
        "RELAY_UPSTREAM": upstream.url(),
        "DELIVERY_LEASE_SECONDS": str(LEASE_SECONDS),
        "LOG_LEVEL": "WARNING",
        **env,
    }
    proc = subprocess.Popen(
        [sys.executable, str(MANAGE), "runrelay", "--no-alerts", "--no-domain-check", *args],
        env=environment,
        stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=settings.BASE_DIR,
    )
    return Node(name, host, port, proc, log)


def stop_node(node: Node) -> None:
    if node.proc.poll() is None:
        node.proc.terminate()
        try:
            node.proc.wait(20)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(10)


@pytest.fixture
def two_nodes(tmp_path: Path, upstream: FakeUpstream, cast) -> Iterator[tuple[Node, Node]]:
    # Each node on an address of its own, as two machines would be.
    nodes = start_nodes(tmp_path, upstream, [("node-a", "127.0.0.1"), ("node-b", "127.0.0.2")])
    try:
        yield nodes[0], nodes[1]
    finally:
        for node in nodes:
            stop_node(node)


def fail_logins(node: Node, username: str, times: int) -> None:
    with node.smtp() as smtp:
        smtp.ehlo()
        for _ in range(times):
            blob = base64.b64encode(f"\0{username}\0wrong".encode()).decode()
            assert smtp.docmd("AUTH PLAIN", blob)[0] == 535


def test_two_nodes_share_the_cooloff_and_its_unblock(two_nodes, cast):
    a, b = two_nodes
    wait_until(lambda: set(RelayNode.objects.values_list("node_id", flat=True))
               == {"node-a", "node-b"}, "the nodes did not register under their names")
    # Two failures on each node: neither alone reaches the limit of four.
    fail_logins(a, cast.acme_smtp.username, 2)
    fail_logins(b, cast.acme_smtp.username, 2)
    for node in (a, b):
        wait_until(lambda node=node: node.greeting().startswith("421 4.7.0"),
                   f"{node.name} did not put the client into the cool-off", timeout=10)
    wait_until(lambda: release_cooloff(cast.acme, CLIENT), "the cool-off was not recorded")
    for node in (a, b):
        wait_until(lambda node=node: node.greeting().startswith("220 "),
                   f"{node.name} kept the cool-off after the unblock", timeout=10)


def send(smtp: smtplib.SMTP) -> tuple[int, str]:
    """One message on a logged-in session: the DATA reply (or the MAIL refusal)."""
    code, reply = smtp.mail("shop@acme.test")
    if code != 250:
        smtp.rset()
        return code, reply.decode()
    assert smtp.rcpt("someone@example.net")[0] == 250
    code, reply = smtp.data(message())
    return code, reply.decode()


def test_a_users_hourly_limit_holds_across_sessions_on_two_nodes(two_nodes, cast):
    a, b = two_nodes
    SmtpUser.objects.filter(pk=cast.acme_smtp.pk).update(hourly_limit=6)
    with a.smtp() as on_a, b.smtp() as on_b:
        for smtp in (on_a, on_b):
            smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        assert [send(on_a)[0] for _ in range(3)] == [250, 250, 250]
        time.sleep(2.5)  # past one limit sync of node b (1 s)
        assert [send(on_b)[0] for _ in range(4)] == [250, 250, 250, 451]
        time.sleep(2.5)
        assert send(on_a)[0] == 451
    assert Message.objects.filter(smtp_user=cast.acme_smtp).count() == 6


@dataclass
class Load:
    """Clients sending on kept-open sessions; a client whose node goes away moves to the
    other one, as it would behind a TCP load balancer or DNS round robin."""

    nodes: tuple[Node, Node]
    username: str
    password: str
    accepted: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def client(self, first: int) -> None:
        index = first
        while not self.stop.is_set():
            node = self.nodes[index % 2]
            try:
                with node.smtp() as smtp:
                    smtp.login(self.username, self.password)
                    while not self.stop.is_set():
                        code, reply = send(smtp)
                        if code == 250:
                            queue_id = re.search(r"queued as (\S+)", reply)
                            assert queue_id, reply
                            with self.lock:
                                self.accepted.append(queue_id.group(1))
                        else:
                            self.failures.append(f"{node.name}: {code} {reply}")
            except (OSError, smtplib.SMTPException) as exc:
                # Killed mid-transaction: that message was never answered 250.
                self.failures.append(f"{node.name}: {type(exc).__name__}")
                index += 1  # to the other node
                time.sleep(0.05)


def test_kill_9_of_one_node_under_load_loses_no_message_it_answered_250_for(
    two_nodes, cast, upstream,
):
    a, b = two_nodes
    upstream.data_delay = 0.05  # deliveries take a while: the killed worker holds leases
    load = Load((a, b), cast.acme_smtp.username, cast.acme_smtp_password)
    clients = [threading.Thread(target=load.client, args=(i,), daemon=True) for i in range(8)]
    for thread in clients:
        thread.start()
    wait_until(lambda: len(load.accepted) >= 150, "the load did not get going", timeout=60)
    a.proc.send_signal(signal.SIGKILL)  # the relay and, with it, its delivery worker
    a.proc.wait(10)
    at_kill = len(load.accepted)
    wait_until(lambda: len(load.accepted) >= at_kill + 150,
               "the clients did not carry on on the surviving node", timeout=60)
    load.stop.set()
    for thread in clients:
        thread.join(30)

    # The kill did cut sessions in the middle of the load.
    assert any(f.startswith("node-a: ") for f in load.failures), load.failures
    accepted = set(load.accepted)
    assert len(accepted) == len(load.accepted)
    stored = set(Message.objects.filter(queue_id__in=accepted).values_list("queue_id", flat=True))
    assert stored == accepted, f"answered 250 but not stored: {sorted(accepted - stored)[:5]}"

    def all_delivered() -> bool:
        pending = Recipient.objects.filter(message__queue_id__in=accepted).exclude(
            status=RecipientStatus.DELIVERED)
        return not pending.exists()

    # Node a's worker died with leases: node b's worker takes them over once they expire.
    wait_until(all_delivered, "an accepted message was not delivered", timeout=120)
    # The upstream has each of them once; a second copy only of a message node a's worker
    # had mid-send at the kill (DATA taken, the reply not yet back): at most one per
    # delivery task of that worker, and its try recorded once.
    copies: Counter[str] = Counter()
    for received in upstream.received:
        found = re.search(rb"\(SMTP\+\) with \S+ id (\S+)", received.header_bytes)
        assert found, received.header_bytes
        copies[found.group(1).decode()] += 1
    assert accepted <= set(copies)
    twice = {queue_id for queue_id, n in copies.items() if n > 1}
    assert all(copies[queue_id] == 2 for queue_id in twice), copies.most_common(3)
    assert len(twice) <= settings.DELIVERY_CONCURRENCY, sorted(twice)
    recorded = Attempt.objects.filter(recipient__message__queue_id__in=accepted)
    assert recorded.count() == len(accepted)
    assert b.proc.poll() is None, b.log.read_text()
