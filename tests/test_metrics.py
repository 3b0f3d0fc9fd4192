"""Prometheus metrics: each long-running process serves its counters, the console adds
the queue gauges, and the numbers move when mail flows. Every scrape is read with
prometheus-client's own parser."""

from __future__ import annotations

import os
import smtplib
import subprocess
import sys
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from alerts.sending import run_once
from relay.models import Recipient, RecipientStatus
from tests.alerts.conftest import failed_message, later, make_rule
from tests.fake_upstream import database_url_for_subprocess, queue_message
from tests.test_process_lifetime import alive, descendants, free_port, wait_until

MANAGE = Path(settings.BASE_DIR) / "manage.py"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels)."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return samples(response.read().decode())


@pytest.mark.django_db(transaction=True)
def test_the_relay_and_delivery_processes_serve_metrics_that_move_when_mail_flows(
    tmp_path, cast
):
    relay_port, relay_metrics, delivery_metrics = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocess(),
        "RELAY_HOSTNAME": "relay.test", "RELAY_LISTEN": f"127.0.0.1:{relay_port}",
        "RELAY_LISTEN_TLS": "", "RELAY_TLS_CERT": "",
        "RELAY_UPSTREAM": f"maildir:{tmp_path / 'maildir'}",
        "METRICS_DELIVERY_LISTEN": f"127.0.0.1:{delivery_metrics}",
    }
    log = (tmp_path / "relay.log").open("wb")
    parent = subprocess.Popen(
        [sys.executable, str(MANAGE), "runrelay", "--no-alerts", "--no-domain-check",
         "--metrics", f"127.0.0.1:{relay_metrics}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=settings.BASE_DIR)
    try:
        def serving() -> bool:
            assert parent.poll() is None, (tmp_path / "relay.log").read_text()
            try:
                scrape(relay_metrics), scrape(delivery_metrics)
                with smtplib.SMTP("127.0.0.1", relay_port, timeout=2):
                    return True
            except OSError:
                return False

        wait_until(serving, 60, "the relay and its delivery worker did not start")
        before = scrape(relay_metrics)
        with smtplib.SMTP("127.0.0.1", relay_port, timeout=10) as smtp:
            smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
            smtp.sendmail("shop@acme.test", ["someone@example.net"],
                          b"From: shop@acme.test\r\nTo: someone@example.net\r\n"
                          b"Subject: metrics\r\n\r\nHello\r\n")
            with pytest.raises(smtplib.SMTPSenderRefused):
                smtp.sendmail("evil@evil.test", ["x@example.net"], b"x\r\n")
        with pytest.raises(smtplib.SMTPAuthenticationError), \
                smtplib.SMTP("127.0.0.1", relay_port, timeout=10) as smtp:
            smtp.ehlo()
            smtp.user, smtp.password = cast.acme_smtp.username, "wrong password"
            smtp.auth("PLAIN", smtp.auth_plain)  # one try (login() would try each mechanism)

        after = scrape(relay_metrics)
        port = (("port", str(relay_port)),)
        assert after[("smtpplus_relay_connections_total", port)] - before.get(
            ("smtpplus_relay_connections_total", port), 0) == 2
        assert after[("smtpplus_relay_logins_total", port)] == 1
        assert after[("smtpplus_relay_messages_accepted_total", ())] == 1
        assert after[("smtpplus_relay_events_total", (("kind", "auth_failed"),))] == 1
        assert after[("smtpplus_relay_events_total", (("kind", "sender_rejected"),))] == 1
        assert after[("smtpplus_relay_commit_group_size_count", ())] == 1
        assert after[("smtpplus_relay_commit_seconds_count", ())] == 1

        delivered = ("smtpplus_deliveries_total", (("outcome", "delivered"), ("upstream", "maildir")))
        wait_until(lambda: scrape(delivery_metrics).get(delivered) == 1, 30,
                   "the delivery worker's metrics did not count the delivery")
        delivery = scrape(delivery_metrics)
        assert delivery[("smtpplus_delivery_latency_seconds_count", ())] == 1
        assert delivery[("smtpplus_delivery_seconds_count", (("upstream", "maildir"),))] == 1
        # Nothing in any label names a user, an address or a client.
        for text in (str(after), str(delivery)):
            for secret in (cast.acme_smtp.username, "someone@example.net", "127.0.0.1"):
                assert secret not in text
    finally:
        children = descendants(parent.pid)
        parent.terminate()
        parent.wait(30)
        wait_until(lambda: not any(alive(pid) for pid in children), 30,
                   "a child process outlived runrelay")


def test_a_bad_metrics_address_is_refused_by_name(tmp_path):
    result = subprocess.run(
        [sys.executable, str(MANAGE), "deliver", "--once", "--metrics", "localhost"],
        capture_output=True, text=True, cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}"})
    assert result.returncode == 1
    assert "metrics address 'localhost' is not HOST:PORT" in result.stderr


@pytest.mark.django_db
def test_the_console_metrics_page_is_absent_unless_enabled(client):
    assert client.get("/metrics").status_code == 404


@pytest.mark.django_db
def test_the_console_metrics_page_needs_the_token(client, settings):
    settings.METRICS_TOKEN = "s3cret-token"
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token").status_code == 200


@pytest.mark.django_db
def test_the_console_metrics_page_opens_to_an_allowed_network(client, settings):
    settings.METRICS_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 401
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200


@pytest.mark.django_db
def test_the_queue_gauges_equal_the_queue(client, settings, cast):
    settings.METRICS_TOKEN = "t"
    queue_message(cast.acme_smtp, ["a@example.net", "b@example.net"])
    waiting = queue_message(cast.acme_smtp, ["c@example.net"])
    Recipient.objects.filter(message=waiting).update(
        status=RecipientStatus.DEFERRED, next_attempt_at=timezone.now() + timedelta(hours=1))
    late = queue_message(cast.globex_smtp, ["d@example.net"])
    Recipient.objects.filter(message=late).update(
        status=RecipientStatus.DEFERRED, next_attempt_at=timezone.now() - timedelta(minutes=10))
    done = queue_message(cast.acme_smtp, ["e@example.net"])
    Recipient.objects.filter(message=done).update(status=RecipientStatus.DELIVERED)

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t")
    assert response["Content-Type"].startswith("text/plain")
    found = samples(response.content.decode())
    assert found[("smtpplus_queue_recipients", (("status", "queued"),))] == 2
    assert found[("smtpplus_queue_recipients", (("status", "deferred"),))] == 2
    assert 600 <= found[("smtpplus_queue_oldest_due_seconds", ())] < 700
    assert found[("smtpplus_relay_nodes_up", ())] == 0


@pytest.mark.django_db
def test_the_alert_sender_counts_alerts_sent(cast):
    sent = ("smtpplus_alerts_total", {"channel": "email", "result": "sent"})
    before = REGISTRY.get_sample_value(sent[0], sent[1]) or 0
    make_rule(cast.acme)
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    assert run_once(now=later()) == 1
    assert REGISTRY.get_sample_value(sent[0], sent[1]) == before + 1
