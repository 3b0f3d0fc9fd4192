"""`manage.py runrelay` as a real process: durable accept across SIGKILL, clean stops."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from relay.models import Message, RelayNode
from tests.fake_upstream import database_url_for_subprocess
from tests.smtp_relay import message

pytestmark = pytest.mark.django_db(transaction=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_runrelay(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(), "RELAY_HOSTNAME": "relay.test",
           "RELAY_TLS_CERT": "", "RELAY_LISTEN_TLS": ""}
    log = (tmp_path / "relay.log").open("wb")
    return subprocess.Popen(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "runrelay", "--no-deliver",
         "--no-domain-check", *args],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR,
    )


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "runrelay exited early"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"runrelay did not listen on {port}")


def test_a_message_answered_250_survives_sigkill(tmp_path, cast):
    port = free_port()
    proc = start_runrelay(tmp_path, "--listen", f"127.0.0.1:{port}")
    try:
        wait_for_port(port, proc)
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=10)
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        smtp.mail("shop@acme.test")
        smtp.rcpt("a@example.net")
        smtp.rcpt("b@example.net")
        code, reply = smtp.data(message())
        proc.kill()  # right after the 250, no chance to flush anything
        proc.wait(10)
        smtp.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 250
    queue_id = reply.decode().rsplit(" ", 1)[1]
    stored = Message.objects.get(queue_id=queue_id)
    assert sorted(stored.recipients.values_list("address", "status")) == [
        ("a@example.net", "queued"), ("b@example.net", "queued")]
    assert bytes(stored.raw).endswith(message())


def test_sigterm_lets_a_session_in_flight_finish_then_exits_0(tmp_path, cast):
    port = free_port()
    proc = start_runrelay(tmp_path, "--listen", f"127.0.0.1:{port}", "--grace", "5")
    try:
        wait_for_port(port, proc)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
            smtp.mail("shop@acme.test")
            smtp.rcpt("a@example.net")
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.3)
            code, _ = smtp.data(message())
            assert code == 250
            # No new connections once stopping.
            with pytest.raises(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    node = RelayNode.objects.get(node_id__endswith=f":{proc.pid}")
    assert node.stopped is not None
    assert node.listeners == [{"host": "127.0.0.1", "port": port, "tls": "none"}]


def test_it_exits_1_with_a_clear_error_when_nothing_can_be_bound(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = start_runrelay(tmp_path, "--listen", f"127.0.0.1:{port}")
        assert proc.wait(30) == 1
    output = (tmp_path / "relay.log").read_text()
    assert f"cannot listen on 127.0.0.1:{port} (port busy); skipped" in output
    assert "could not listen on any" in output


def test_processes_share_the_ports(tmp_path, cast):
    port = free_port()
    proc = start_runrelay(tmp_path, "--listen", f"127.0.0.1:{port}", "--processes", "2")
    try:
        wait_for_port(port, proc)
        deadline = time.monotonic() + 20
        while RelayNode.objects.filter(stopped=None).count() < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert RelayNode.objects.filter(stopped=None).count() == 2
        for _ in range(4):
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
                smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
                assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert Message.objects.count() == 4
    assert RelayNode.objects.filter(stopped=None).count() == 0
