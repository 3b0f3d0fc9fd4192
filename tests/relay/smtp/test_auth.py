"""AUTH PLAIN and LOGIN over real sockets, failed logins, and the login cool-off."""

from __future__ import annotations

import base64
import logging
import smtplib
import time

import pytest
from django.utils import timezone

from accounts.models import SmtpUser
from relay.models import EventKind, RelayEvent
from relay.smtp.events import EventBuffer, write_events
from tests.smtp_relay import dialog


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


def test_greeting_names_the_relay_and_no_software_version(relay):
    assert dialog(relay.host, relay.port, [b"QUIT"])[0] == "220 relay.test ESMTP SMTP+ ready"


def test_auth_plain_with_initial_response(relay, cast):
    blob = b64(f"\0{cast.acme_smtp.username}\0{cast.acme_smtp_password}")
    replies = dialog(relay.host, relay.port, [b"EHLO client.test", b"AUTH PLAIN " + blob])
    assert "250-AUTH LOGIN PLAIN" in replies[1]
    assert replies[2] == "235 2.7.0 Authentication successful"


def test_a_successful_login_leaves_no_warning_in_the_log(relay, cast, caplog):
    blob = b64(f"\0{cast.acme_smtp.username}\0{cast.acme_smtp_password}")
    replies = dialog(relay.host, relay.port, [b"EHLO client.test", b"AUTH PLAIN " + blob])
    assert replies[2] == "235 2.7.0 Authentication successful"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_auth_plain_without_initial_response(relay, cast):
    blob = b64(f"\0{cast.acme_smtp.username}\0{cast.acme_smtp_password}")
    replies = dialog(relay.host, relay.port, [b"EHLO client.test", b"AUTH PLAIN", blob])
    assert replies[2] == "334 "
    assert replies[3] == "235 2.7.0 Authentication successful"


def test_auth_login_prompts_with_standard_username_and_password(relay, cast):
    replies = dialog(relay.host, relay.port, [
        b"EHLO client.test", b"AUTH LOGIN", b64(cast.acme_smtp.username),
        b64(cast.acme_smtp_password),
    ])
    assert replies[2] == "334 " + b64("Username:").decode()
    assert replies[3] == "334 " + b64("Password:").decode()
    assert replies[4] == "235 2.7.0 Authentication successful"


def test_auth_login_with_initial_response(relay, cast):
    replies = dialog(relay.host, relay.port, [
        b"EHLO client.test", b"AUTH LOGIN " + b64(cast.acme_smtp.username),
        b64(cast.acme_smtp_password),
    ])
    assert replies[2] == "334 " + b64("Password:").decode()
    assert replies[3] == "235 2.7.0 Authentication successful"


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_smtplib_logs_in_with_either_mechanism(relay, cast, mechanism):
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.ehlo()
        smtp.user, smtp.password = cast.acme_smtp.username, cast.acme_smtp_password
        auth = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
        code, _ = smtp.auth(mechanism, auth, initial_response_ok=False)
    assert code == 235


def test_it_rejects_a_wrong_password_and_records_why(relay, cast):
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        with pytest.raises(smtplib.SMTPAuthenticationError) as err:
            smtp.login(cast.acme_smtp.username, "not-the-password")
    assert err.value.smtp_code == 535
    assert err.value.smtp_error == b"5.7.8 Authentication credentials invalid"
    relay.flush()
    event = RelayEvent.objects.get(kind=EventKind.AUTH_FAILED)
    assert event.reason == "wrong password"
    assert event.username == cast.acme_smtp.username
    assert event.smtp_user == cast.acme_smtp
    assert event.account == cast.acme
    assert event.client_ip == "127.0.0.1"
    assert event.port == relay.port
    assert event.reply.startswith("535 5.7.8")


def test_unknown_and_disabled_users_get_the_same_reply_but_precise_events(relay, cast):
    SmtpUser.objects.filter(pk=cast.globex_smtp.pk).update(active=False)
    for username, password in [("smtp-nobody", "x"),
                               (cast.globex_smtp.username, cast.globex_smtp_password)]:
        with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
            with pytest.raises(smtplib.SMTPAuthenticationError) as err:
                smtp.login(username, password)
            assert (err.value.smtp_code, err.value.smtp_error) == (
                535, b"5.7.8 Authentication credentials invalid")
    relay.flush()
    reasons = dict(RelayEvent.objects.filter(kind=EventKind.AUTH_FAILED)
                   .values_list("username", "reason"))
    assert reasons == {"smtp-nobody": "unknown user",
                       cast.globex_smtp.username: "user disabled"}


@pytest.mark.parametrize("relay", [{"limits_sync_seconds": 3600}], indirect=True)
def test_a_successful_login_updates_last_login_time_and_ip_at_the_next_limit_sync(relay, cast):
    before = timezone.now()
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    cast.acme_smtp.refresh_from_db()
    assert cast.acme_smtp.last_login_at is None  # not written by the login itself
    relay.flush()  # runs the limit sync now (every RELAY_LIMITS_SYNC_SECONDS otherwise)
    cast.acme_smtp.refresh_from_db()
    assert cast.acme_smtp.last_login_ip == "127.0.0.1"
    assert cast.acme_smtp.last_login_at is not None and cast.acme_smtp.last_login_at >= before


@pytest.mark.parametrize("relay", [{"limits_sync_seconds": 0.2}], indirect=True)
def test_the_last_login_reaches_the_database_within_a_sync_interval(relay, cast):
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        cast.acme_smtp.refresh_from_db()
        if cast.acme_smtp.last_login_ip:
            break
        time.sleep(0.05)
    assert cast.acme_smtp.last_login_ip == "127.0.0.1"


def test_a_relay_that_stops_writes_the_last_logins_it_kept(start_relay, cast):
    relay = start_relay(limits_sync_seconds=3600)
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    relay.stop()
    cast.acme_smtp.refresh_from_db()
    assert cast.acme_smtp.last_login_ip == "127.0.0.1"


def test_mail_without_auth_is_refused_and_recorded(relay, cast):
    replies = dialog(relay.host, relay.port, [b"EHLO client.test", b"MAIL FROM:<shop@acme.test>"])
    assert replies[2] == "530 5.7.0 Authentication required"
    relay.flush()
    assert RelayEvent.objects.filter(kind=EventKind.AUTH_REQUIRED, address="shop@acme.test").exists()


@pytest.mark.parametrize("relay", [{"RELAY_AUTH_FAILURE_LIMIT": 3}], indirect=True)
def test_repeated_failures_put_the_client_in_a_cool_off(relay, cast):
    bad = b"AUTH PLAIN " + b64(f"\0{cast.acme_smtp.username}\0wrong")
    replies = dialog(relay.host, relay.port, [b"EHLO c", bad, bad, bad])
    assert replies[2].startswith("535 5.7.8") and replies[3].startswith("535 5.7.8")
    assert replies[4].startswith("421 4.7.0 Too many failed logins from your address")
    # Closed, and new connections are refused even with the right password.
    assert dialog(relay.host, relay.port, [])[0].startswith("421 4.7.0 Too many failed logins")
    relay.flush()
    assert RelayEvent.objects.filter(kind=EventKind.AUTH_COOLOFF).exists()
    assert RelayEvent.objects.get(kind=EventKind.AUTH_FAILED).count == 3


def test_a_flood_of_identical_failures_is_folded_into_one_event_row(relay, cast):
    bad = b"AUTH PLAIN " + b64("\0smtp-attacker\0guess")
    dialog(relay.host, relay.port, [b"EHLO c"] + [bad] * 8)
    relay.flush()
    dialog(relay.host, relay.port, [b"EHLO c", bad])
    relay.flush()
    event = RelayEvent.objects.get(kind=EventKind.AUTH_FAILED)
    assert event.count == 9
    assert event.reason == "unknown user"


def test_events_written_again_within_a_minute_add_to_their_rows_and_new_ones_get_rows(db):
    def batch(*ips: str | None):
        events = EventBuffer()
        for ip in ips:
            events.record(EventKind.AUTH_FAILED, client_ip=ip, username="smtp-x", reply="535")
        return events.take()

    assert write_events(batch("192.0.2.1", None)) == 2
    assert write_events(batch("192.0.2.1", None, "192.0.2.2")) == 3
    counts = dict(RelayEvent.objects.values_list("client_ip", "count"))
    assert counts == {"192.0.2.1": 2, None: 2, "192.0.2.2": 1}


def test_malformed_auth_plain_gets_a_syntax_error_not_a_hang(relay):
    replies = dialog(relay.host, relay.port, [b"EHLO c", b"AUTH PLAIN !!!", b"AUTH PLAIN " + b64("x")])
    assert replies[2].startswith("501 5.5.2")
    assert replies[3].startswith("501 5.5.2")
