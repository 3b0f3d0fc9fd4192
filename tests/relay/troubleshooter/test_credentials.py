"""The credentials check: failed logins, their reasons and a disabled user, produced over SMTP."""

from __future__ import annotations

import smtplib
import ssl

import pytest

from accounts.actions.smtp_users import set_active
from relay.smtp.tls import write_self_signed
from relay.troubleshooter.base import NODATA, OK, PROBLEM
from relay.troubleshooter.credentials import check_credentials
from tests.relay.troubleshooter.helpers import (
    failed_login,
    logged_in,
    run,
    text,
)


# --- credentials -------------------------------------------------------------------------
def test_failed_logins_are_a_problem_with_count_reason_ip_and_time(relay, cast):
    failed_login(relay, cast.acme_smtp.username)
    failed_login(relay, cast.acme_smtp.username)
    result = run(check_credentials, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert "2 failed logins in the last 24 h" in text(result)
    assert "Reason: wrong password — 2 times" in text(result)
    assert "From 127.0.0.1: 2 times" in text(result)
    assert "Last successful login: never" in text(result)
    assert "Reveal the password" in result.fix.text
    assert result.fix.actions[0].url == f"/users/{cast.acme_smtp.pk}/"


def test_a_disabled_user_is_a_problem_and_its_logins_say_so(relay, cast):
    set_active(cast.acme_smtp, False)
    failed_login(relay, cast.acme_smtp.username, cast.acme_smtp_password)
    result = run(check_credentials, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert "disabled" in result.title
    assert "Reason: user disabled — 1 time" in text(result)
    assert "Enable the user" in result.fix.text


def test_a_later_successful_login_makes_credentials_ok(relay, cast):
    failed_login(relay, cast.acme_smtp.username)
    with logged_in(relay, cast.acme_smtp, cast.acme_smtp_password):
        pass
    result = run(check_credentials, relay, cast.acme_smtp)
    assert result.status == OK
    assert "1 failed login" in text(result)
    assert "from 127.0.0.1" in text(result)
    assert "A login succeeded after the last failure." in text(result)


def test_a_success_soon_after_a_failure_counts_even_when_the_login_time_is_throttled(relay, cast):
    # The relay writes last_login_at at most once a minute; the connection counts know.
    for attempt in ("ok", "fail", "ok"):
        if attempt == "ok":
            with logged_in(relay, cast.acme_smtp, cast.acme_smtp_password):
                pass
        else:
            failed_login(relay, cast.acme_smtp.username)
        relay.flush()
    assert run(check_credentials, relay, cast.acme_smtp).status == OK


def test_credentials_have_no_data_before_any_login(relay, cast):
    result = run(check_credentials, relay, cast.acme_smtp)
    assert result.status == NODATA
    assert "Last successful login: never" in text(result)


def test_another_users_failures_do_not_count(relay, cast):
    failed_login(relay, cast.globex_smtp.username)
    assert run(check_credentials, relay, cast.acme_smtp).status == NODATA


def test_auth_before_starttls_shows_as_tls_required_for_the_users_client(cast, start_relay,
                                                                          tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    write_self_signed(cert, key, ["relay.test"])
    relay = start_relay(RELAY_TLS_CERT=str(cert), RELAY_TLS_KEY=str(key), RELAY_REQUIRE_TLS=True)
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:  # the client worked once
        smtp.starttls(context=context)
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:  # then lost its STARTTLS
        smtp.ehlo()
        smtp.user, smtp.password = cast.acme_smtp.username, cast.acme_smtp_password
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.auth("PLAIN", smtp.auth_plain)
    assert refused.value.smtp_code == 538
    result = run(check_credentials, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert "Reason: TLS required (AUTH before STARTTLS) — 1 time" in text(result)
    assert "Turn on STARTTLS" in result.fix.text
