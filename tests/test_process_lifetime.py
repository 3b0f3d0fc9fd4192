"""`up` and `runrelay` as real processes: killed with SIGKILL, they leave no child behind
(console, relay processes, delivery worker, alert sender)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.conf import settings

from tests.fake_upstream import database_url_for_subprocess

pytestmark = pytest.mark.django_db(transaction=True)

MANAGE = Path(settings.BASE_DIR) / "manage.py"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, from /proc; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def descendants(pid: int) -> dict[int, str]:
    """Every live process below `pid`, with its command line."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents.setdefault(stat[1], []).append(int(entry))
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if alive(child):
                try:
                    found[child] = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ").decode()
                except OSError:
                    continue
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    stat = _stat(pid)
    return stat is not None and stat[0] not in ("Z", "X")  # a zombie has ended


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(what)
        time.sleep(0.1)


def start(tmp_path: Path, *args: str, dns: str = "") -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        # The domain check child's lookups go to the tests' Knot server, never the
        # system's resolver (which may hang until the timeout).
        "SMTPPLUS_DNS_RESOLVERS": dns,
        "SMTPPLUS_DNS_TIMEOUT": "3",
        "DATABASE_URL": database_url_for_subprocess(),
        "RELAY_HOSTNAME": "relay.test",
        "RELAY_LISTEN": f"127.0.0.1:{free_port()}",
        "RELAY_LISTEN_TLS": "",
        "RELAY_TLS_CERT": "",
        "RELAY_UPSTREAM": f"maildir:{tmp_path / 'maildir'}",
    }
    log = (tmp_path / "parent.log").open("wb")
    return subprocess.Popen(
        [sys.executable, str(MANAGE), *args], env=env, stdout=log, stderr=subprocess.STDOUT,
        cwd=settings.BASE_DIR,
    )


def kill_parent_and_expect_children_to_end(
    parent: subprocess.Popen[bytes], started: Callable[[dict[int, str]], bool], tmp_path: Path
) -> None:
    children: dict[int, str] = {}
    try:
        def all_started() -> bool:
            nonlocal children
            assert parent.poll() is None, (tmp_path / "parent.log").read_text()
            children = descendants(parent.pid)
            return started(children)

        wait_until(all_started, 60, "the children did not all start")
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        wait_until(
            lambda: not any(alive(pid) for pid in children), 60,
            f"children outlived their parent: {[children[p] for p in children if alive(p)]}",
        )
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        for pid in children:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def _count(children: dict[int, str], command: str) -> int:
    return sum(c.rstrip().endswith(f"manage.py {command}") for c in children.values())


def test_the_relay_processes_delivery_worker_and_alert_sender_end_when_runrelay_is_killed(
    tmp_path, dns_server
):
    parent = start(tmp_path, "runrelay", "--processes", "2", dns=dns_server.address)

    def started(children: dict[int, str]) -> bool:
        return (
            _count(children, "deliver") == 1
            and _count(children, "sendalerts") == 1
            and _count(children, "domain check --due --loop") == 1
            # two relay processes + deliver + sendalerts + the domain check
            and len(children) == 5
        )

    kill_parent_and_expect_children_to_end(parent, started, tmp_path)


def test_every_part_started_by_up_ends_when_up_is_killed(tmp_path, dns_server):
    parent = start(tmp_path, "up", "--bind", f"127.0.0.1:{free_port()}", "--workers", "1",
                   dns=dns_server.address)

    def started(children: dict[int, str]) -> bool:
        commands = list(children.values())
        return (
            sum("gunicorn" in c for c in commands) == 2  # the console and its worker
            and _count(children, "runrelay") == 1
            and _count(children, "deliver") == 1
            and _count(children, "sendalerts") == 1
            and _count(children, "domain check --due --loop") == 1
        )

    kill_parent_and_expect_children_to_end(parent, started, tmp_path)
