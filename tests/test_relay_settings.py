"""RELAY_TLS_HANDSHAKE_TIMEOUT is checked like the other settings the relay cannot run
with: a value that is not a positive number of seconds is an error naming it, from
`manage.py check` and before the relay starts."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.core.management.base import SystemCheckError

MANAGE = os.path.join(django_settings.BASE_DIR, "manage.py")


@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5, math.inf, math.nan, "30", True])
def test_the_system_check_refuses_a_tls_handshake_timeout_that_is_not_positive(settings, value):
    settings.RELAY_TLS_HANDSHAKE_TIMEOUT = value
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "smtpplus.E005" in str(raised.value)
    assert "RELAY_TLS_HANDSHAKE_TIMEOUT must be a positive number of seconds" in str(raised.value)


@pytest.mark.parametrize("value", [30, 0.5, 2])
def test_a_positive_tls_handshake_timeout_passes_the_check(settings, value):
    settings.RELAY_TLS_HANDSHAKE_TIMEOUT = value
    call_command("check")


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, MANAGE, *args], env=environment, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("raw", ["abc", "30s", "nan-ish"])
def test_a_tls_handshake_timeout_that_is_not_a_number_is_named_at_start(raw):
    done = _manage("check", RELAY_TLS_HANDSHAKE_TIMEOUT=raw)
    assert done.returncode != 0
    assert f"RELAY_TLS_HANDSHAKE_TIMEOUT must be a number of seconds, not {raw!r}" in done.stderr


def test_the_relay_does_not_start_with_a_negative_tls_handshake_timeout():
    done = _manage("runrelay", "--listen", "127.0.0.1:0", "--no-domain-check", "--no-deliver", "--no-alerts",
                   RELAY_TLS_HANDSHAKE_TIMEOUT="-1")
    assert done.returncode != 0
    assert "RELAY_TLS_HANDSHAKE_TIMEOUT must be a positive number of seconds" in done.stderr
