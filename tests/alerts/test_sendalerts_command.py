"""`manage.py sendalerts`: one pass with --once, or a loop that stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import mail
from django.core.management import call_command
from django.utils import timezone

from alerts.models import AlertRule, Notification
from relay.models import Recipient, RollupState
from tests.alerts.conftest import failed_message, make_rule
from tests.fake_upstream import database_url_for_subprocess


def _failure_ready_to_send(cast) -> None:
    rule = make_rule(cast.acme, email_recipients="ops@acme.test")
    # Older than the coalescing window, younger than the rule: due at the first pass.
    AlertRule.objects.filter(pk=rule.pk).update(watch_since=timezone.now() - timedelta(minutes=5))
    failed_message(cast.acme_smtp, ["ghost@example.net"])
    Recipient.objects.update(finished_at=timezone.now() - timedelta(minutes=2))


@pytest.mark.django_db
def test_once_runs_a_single_pass(cast, capsys):
    _failure_ready_to_send(cast)
    call_command("sendalerts", "--once")
    assert "Sent 1 notification." in capsys.readouterr().out
    assert [m.to for m in mail.outbox] == [["ops@acme.test"]]


@pytest.mark.django_db(transaction=True)
def test_the_loop_sends_alerts_folds_statistics_and_stops_cleanly_on_sigterm(cast):
    _failure_ready_to_send(cast)
    env = {**os.environ, "DATABASE_URL": database_url_for_subprocess(),
           "EMAIL_URL": "consolemail://", "LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "sendalerts", "--interval", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if (Notification.objects.filter(target="ops@acme.test", status="sent").exists()
                    and RollupState.objects.exists()):
                break
            time.sleep(0.1)
        else:
            pytest.fail("sendalerts did not send the alert or fold the statistics")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "sendalerts stopped." in out
    assert "Sent 1 notification." in out
    assert "To: ops@acme.test" in out  # the console email backend prints the message


def test_a_check_warns_when_alert_email_would_go_through_the_relay(settings):
    from alerts.checks import check_alert_email_not_through_relay

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.RELAY_LISTEN = "0.0.0.0:25,587,2525"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 2525
    assert [w.id for w in check_alert_email_not_through_relay()] == ["alerts.W001"]
    settings.EMAIL_HOST = "smtp.provider.example"
    assert check_alert_email_not_through_relay() == []
