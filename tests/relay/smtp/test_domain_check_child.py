"""The periodic check of the sending domains that `runrelay` starts is its own process: a
DNS lookup stuck there (a resolver that never answers) does not hold up accepting mail;
and an operator turns that child off with SMTPPLUS_DOMAIN_RECHECK=false (or
`--no-domain-check`)."""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
from pathlib import Path

import dns.message
import pytest
from django.conf import settings

from relay.models import Message
from tests.fake_upstream import database_url_for_subprocess
from tests.relay.smtp.test_runrelay import free_port, wait_for_port
from tests.smtp_relay import message
from tests.test_process_lifetime import descendants

pytestmark = pytest.mark.django_db(transaction=True)


def _runrelay(tmp_path: Path, port: int, resolver: str, *args: str,
              **env: str) -> subprocess.Popen[bytes]:
    environment = {
        **os.environ, "DATABASE_URL": database_url_for_subprocess(), "RELAY_HOSTNAME": "relay.test",
        "RELAY_TLS_CERT": "", "RELAY_LISTEN_TLS": "", "SMTPPLUS_DNS_RESOLVERS": resolver,
        # Far longer than the client below waits for any reply.
        "SMTPPLUS_DNS_TIMEOUT": "60", **env,
    }
    log = (tmp_path / "relay.log").open("wb")
    return subprocess.Popen(
        [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "runrelay", "--no-deliver",
         "--no-alerts", "--listen", f"127.0.0.1:{port}", *args],
        env=environment, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR)


@pytest.fixture
def silent_resolver():
    """A UDP "resolver" that takes queries and never answers; the test reads them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(30)
    yield sock
    sock.close()


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()  # its children end with it (smtpplus.lifetime)
        proc.wait(10)


def test_a_domain_check_stuck_on_dns_does_not_hold_up_accepting_mail(
    tmp_path, cast, silent_resolver
):
    port = free_port()
    host, resolver_port = silent_resolver.getsockname()
    proc = _runrelay(tmp_path, port, f"{host}:{resolver_port}")
    try:
        wait_for_port(port, proc)
        # The child's lookup of acme.test (due: never checked) is now waiting for an
        # answer that never comes.
        query, _ = silent_resolver.recvfrom(4096)
        assert "acme.test" in str(dns.message.from_wire(query).question[0].name)
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
            refused = smtp.sendmail("shop@acme.test", ["a@example.net"], message())
        assert refused == {}
        assert Message.objects.filter(envelope_from="shop@acme.test").count() == 1
        children = descendants(proc.pid)
        assert any(c.rstrip().endswith("domain check --due --loop") for c in children.values())
    finally:
        _stop(proc)


@pytest.mark.parametrize("how", ["setting", "option"])
def test_an_operator_turns_the_domain_check_child_off(tmp_path, cast, silent_resolver, how):
    port = free_port()
    host, resolver_port = silent_resolver.getsockname()
    args, env = (("--no-domain-check",), {}) if how == "option" else (
        (), {"SMTPPLUS_DOMAIN_RECHECK": "false"})
    proc = _runrelay(tmp_path, port, f"{host}:{resolver_port}", *args, **env)
    try:
        wait_for_port(port, proc)
        children = descendants(proc.pid)
        assert not any("domain check" in c for c in children.values()), children
        expected = "--no-domain-check" if how == "option" else "SMTPPLUS_DOMAIN_RECHECK=false"
        log = (tmp_path / "relay.log").read_text()
        assert f"the periodic check of the sending domains is off ({expected})" in log
    finally:
        _stop(proc)
