"""`manage.py domain`: JSON on stdout, a clear error and exit 1 on bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.models import AuditEvent, DomainStatus, SendingDomain, VerifiedHow
from tests.fake_upstream import database_url_for_subprocess

ROOT = Path(__file__).resolve().parents[2]

# Valid SPF and DMARC records, so that a domain's verdict is its token's and DKIM's.
SPF_AND_DMARC = [("@", "TXT", '"v=spf1 ip4:203.0.113.7 -all"'),
                 ("_dmarc", "TXT", '"v=DMARC1; p=reject; rua=mailto:d@acme.test"')]


def run(*args: str):
    out = StringIO()
    call_command("domain", *args, stdout=out, stderr=StringIO())
    return json.loads(out.getvalue())


def test_add_prints_the_domain_and_the_record_to_publish(cast):
    data = run("add", "Cli.Example.", "--account", "acme")
    row = SendingDomain.objects.get(domain="cli.example")
    assert data["domain"] == "cli.example" and data["account"] == "acme"
    assert data["status"] == "unverified" and data["verified_how"] == ""
    assert data["verification_record"] == {
        "name": "_smtpplus.cli.example", "type": "TXT",
        "value": f"smtpplus-verification={row.token}",
        "zone_line": f'_smtpplus.cli.example. IN TXT "smtpplus-verification={row.token}"',
    }
    event = AuditEvent.objects.get(action="domain.add")
    assert event.actor_label.startswith("command line")


def test_bad_input_is_refused_with_a_message_naming_it(cast):
    with pytest.raises(CommandError, match="'localhost': a domain needs at least two labels"):
        run("add", "localhost", "--account", "acme")
    with pytest.raises(CommandError, match="no account with slug 'nope'"):
        run("add", "x.example", "--account", "nope")
    with pytest.raises(CommandError, match="missing.example is not a sending domain"):
        run("show", "missing.example")
    with pytest.raises(CommandError, match="add --force"):
        run("verify", "missing.example")


def test_check_verifies_by_dns_and_list_shows_the_verdict(cast, dns_server, settings):
    settings.RELAY_EGRESS_IPS = ["203.0.113.7"]  # which the SPF record authorizes
    data = run("add", "cli-check.test", "--account", "acme")
    dns_server.set_records("cli-check.test", [
        ("_smtpplus", "TXT", f'"{data["verification_record"]["value"]}"'), *SPF_AND_DMARC])
    checked = run("check", "cli-check.test")
    assert checked["status"] == "verified" and checked["verified_how"] == "dns"
    assert checked["findings"][0]["check"] == "verification"
    assert checked["findings"][0]["severity"] == "ok"
    # Verified, but its DKIM key is not published yet: the verdict says so until it is.
    assert checked["verdict"] == "warning"
    (key,) = run("dkim-show", "cli-check.test")["keys"]
    dns_server.set_records("cli-check.test", [
        ("_smtpplus", "TXT", f'"{data["verification_record"]["value"]}"'), *SPF_AND_DMARC,
        (key["record"]["name"] + ".", "TXT", " ".join(f'"{s}"' for s in key["record"]["strings"]))])
    checked = run("check", "cli-check.test")
    assert checked["verdict"] == "ok", checked["findings"]
    listed = run("list", "--account", "acme")
    assert [(d["domain"], d["status"]) for d in listed] == [
        ("acme.test", "verified"), ("cli-check.test", "verified")]
    assert [d["domain"] for d in run("list", "--account", "globex")] == ["globex.test"]


def test_check_due_checks_the_domains_due_and_no_other(cast, dns_server, settings):
    settings.SMTPPLUS_DOMAIN_RECHECK_INTERVAL = 3600
    SendingDomain.objects.update(last_checked_at=timezone.now())  # the cast's domains
    run("add", "due-a.test", "--account", "acme")
    run("add", "due-b.test", "--account", "acme")
    SendingDomain.objects.filter(domain="due-b.test").update(last_checked_at=timezone.now())
    checked = run("check", "--due")
    assert [c["domain"] for c in checked] == ["due-a.test"]
    assert SendingDomain.objects.get(domain="due-a.test").last_checked_at > (
        timezone.now() - timedelta(minutes=1))


def test_verify_force_transfer_and_remove(cast):
    run("add", "ops.example", "--account", "acme")
    data = run("verify", "ops.example", "--force")
    assert (data["status"], data["verified_how"]) == ("verified", VerifiedHow.OPERATOR)
    run("add", "ops.example", "--account", "globex")
    with pytest.raises(CommandError, match="several accounts have ops.example"):
        run("show", "ops.example")
    with pytest.raises(CommandError, match="is verified by account acme: transfer it"):
        run("verify", "ops.example", "--force", "--account", "globex")
    moved = run("transfer", "ops.example", "--from", "acme", "--to", "globex")
    assert moved["account"] == "globex" and moved["status"] == DomainStatus.VERIFIED
    assert AuditEvent.objects.filter(action="domain.transfer").count() == 2
    assert run("remove", "ops.example") == {
        "domain": "ops.example", "account": "globex", "removed": True,
        "removed_authorizations": []}
    assert not SendingDomain.objects.filter(domain="ops.example").exists()


@pytest.mark.django_db(transaction=True)
def test_check_due_loop_runs_as_a_process_checks_what_is_due_and_stops_on_sigterm(
        cast, dns_server, tmp_path):
    SendingDomain.objects.update(last_checked_at=timezone.now())  # the cast's domains
    data = run("add", "loop.test", "--account", "acme")
    dns_server.set_records("loop.test", [
        ("_smtpplus", "TXT", f'"{data["verification_record"]["value"]}"'), *SPF_AND_DMARC])
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(),
           "SMTPPLUS_DNS_RESOLVERS": dns_server.address}
    log = tmp_path / "loop.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "domain", "check", "--due", "--loop", "--interval", "1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if SendingDomain.objects.get(domain="loop.test").status == DomainStatus.VERIFIED:
                    break
                time.sleep(0.2)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert lines[0] == {"domain_check": "running"} and lines[-1] == {"domain_check": "stopped"}
    [checked] = [line for line in lines if line.get("domain") == "loop.test"]
    assert checked["status"] == "verified" and checked["verdict"] == "warning"  # DKIM pending
