"""Successful logins are kept per relay process, as safe as an open session.

The relay's check of logged-in users runs at a chosen moment (`check_now(relay)`)
instead of on its timer: an entry is trusted for two checks' intervals since the check
(or the login query) that last saw its user unchanged.
"""

from __future__ import annotations

import base64
import smtplib
import time

import pytest

from accounts.actions import smtp_users
from relay.smtp.login_cache import LoginCache
from tests.relay.smtp.test_session_revocation import NO_TIMER, assert_closed, check_now, send
from tests.senders import own

pytestmark = pytest.mark.django_db(transaction=True)


def queries(relay) -> int:
    return relay.server.store.login_queries


def cache(relay) -> LoginCache:
    kept = relay.server.store.login_cache
    assert kept is not None
    return kept


def log_in(relay, username: str, password: str) -> smtplib.SMTP:
    smtp = smtplib.SMTP(relay.host, relay.port, timeout=10)
    smtp.login(username, password)
    return smtp


def refused(relay, username: str, password: str) -> int:
    """The reply code to one AUTH PLAIN with these credentials (smtplib's login() would
    try its other mechanisms after a refusal)."""
    blob = base64.b64encode(f"\0{username}\0{password}".encode()).decode()
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.ehlo()
        code, _ = smtp.docmd("AUTH", f"PLAIN {blob}")
        return code


@pytest.fixture
def acme(cast):
    own(cast.acme.pk, "acme.test")
    return cast.acme_smtp, cast.acme_smtp_password


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_a_second_login_with_the_same_credentials_runs_no_login_query(relay, acme):
    user, password = acme
    log_in(relay, user.username, password).quit()
    assert queries(relay) == 1
    smtp = log_in(relay, user.username, password)
    assert queries(relay) == 1
    # The session opened from the kept login works as any other.
    code, _ = send(smtp)
    assert code == 250
    smtp.quit()
    # Matched as the login query matches: without case or surrounding spaces.
    log_in(relay, f" {user.username.upper()} ", password).quit()
    assert queries(relay) == 1


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_a_kept_login_goes_to_the_database_once_no_check_confirmed_it_for_two_intervals(
        relay, acme):
    user, password = acme
    log_in(relay, user.username, password).quit()
    kept = cache(relay)
    now = kept.clock()
    kept.clock = lambda: now + kept.max_age + 0.01
    log_in(relay, user.username, password).quit()
    assert queries(relay) == 2


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_the_check_confirms_unchanged_users_so_their_logins_stay_kept(relay, acme):
    user, password = acme
    kept = cache(relay)
    kept.max_age = 2.0  # as with a check every second
    now = [1000.0]
    kept.clock = lambda: now[0]
    log_in(relay, user.username, password).quit()
    now[0] += kept.max_age - 1
    check_now(relay)
    now[0] += 2  # past two intervals since the login query, one second since the check
    log_in(relay, user.username, password).quit()
    assert queries(relay) == 1
    now[0] += kept.max_age
    log_in(relay, user.username, password).quit()
    assert queries(relay) == 2


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_after_a_password_reset_the_old_password_is_refused_and_its_kept_session_cut_off(
        relay, acme):
    user, password = acme
    log_in(relay, user.username, password).quit()
    smtp = log_in(relay, user.username, password)  # from the kept login
    assert queries(relay) == 1
    new_password = smtp_users.reset_password(user)
    check_now(relay)
    code, reply = smtp.noop()
    assert code == 421
    assert b"had its password changed" in reply
    assert_closed(smtp)
    assert refused(relay, user.username, password) == 535
    assert queries(relay) == 2
    log_in(relay, user.username, new_password).quit()
    assert queries(relay) == 3


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_after_the_user_is_disabled_its_login_is_refused_and_its_kept_session_cut_off(
        relay, acme):
    user, password = acme
    log_in(relay, user.username, password).quit()
    smtp = log_in(relay, user.username, password)
    smtp_users.set_active(user, False)
    check_now(relay)
    code, reply = smtp.mail("shop@acme.test")
    assert (code, b"was disabled by an admin" in reply) == (421, True)
    assert_closed(smtp)
    assert refused(relay, user.username, password) == 535
    assert queries(relay) == 2
    assert len(cache(relay)) == 0


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_after_the_user_is_deleted_its_login_is_refused_and_its_kept_session_cut_off(
        relay, acme):
    user, password = acme
    username = user.username
    log_in(relay, username, password).quit()
    smtp = log_in(relay, username, password)
    smtp_users.delete_smtp_user(user)
    check_now(relay)
    code, reply = smtp.noop()
    assert (code, b"was deleted by an admin" in reply) == (421, True)
    assert_closed(smtp)
    assert refused(relay, username, password) == 535
    assert queries(relay) == 2


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_a_session_opened_from_a_kept_login_after_an_unseen_reset_is_cut_off_at_the_check(
        relay, acme):
    user, password = acme
    log_in(relay, user.username, password).quit()
    smtp_users.reset_password(user)
    # Before the check has seen the reset: within the bound, the kept login is used ...
    smtp = log_in(relay, user.username, password)
    assert queries(relay) == 1
    # ... and its session carries the old versions, so the check cuts it off.
    check_now(relay)
    assert smtp.noop()[0] == 421
    assert refused(relay, user.username, password) == 535


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_a_wrong_password_goes_to_the_database_and_is_never_kept(relay, acme):
    user, password = acme
    log_in(relay, user.username, password).quit()
    assert len(cache(relay)) == 1
    for _ in range(2):
        assert refused(relay, user.username, password + "x") == 535
    assert queries(relay) == 3
    assert len(cache(relay)) == 1
    # A user that never logged in successfully is never kept either.
    assert refused(relay, "smtp-nobody", password) == 535
    assert (queries(relay), len(cache(relay))) == (4, 1)


@pytest.mark.parametrize("relay", [{**NO_TIMER, "login_cache": False}], indirect=True)
def test_with_the_login_cache_off_every_login_runs_the_login_query(relay, acme):
    user, password = acme
    assert relay.server.store.login_cache is None
    for expected in (1, 2, 3):
        log_in(relay, user.username, password).quit()
        assert queries(relay) == expected


def test_the_cache_keeps_no_password_and_drops_the_least_recently_used():
    kept = LoginCache(2.0, max_entries=2)
    for name in ("a", "b"):
        kept.put(name, "secret-" + name, (name,), 1, 1, 1, kept.clock())
    assert kept.get("a", "secret-a") == ("a",)  # a is now the most recent
    kept.put("c", "secret-c", ("c",), 3, 1, 1, kept.clock())
    assert kept.get("b", "secret-b") is None
    assert kept.get("a", "secret-a") == ("a",)
    assert kept.get("a", "secret-b") is None
    assert not any(b"secret" in slot[1] or "secret" in slot[0] for slot in kept._entries)
    # Another process draws another key: its digests differ.
    other = LoginCache(2.0)
    assert other._slot("a", "secret-a") != kept._slot("a", "secret-a")


@pytest.mark.parametrize("relay", [{**NO_TIMER, "RELAY_AUTH_FAILURE_LIMIT": 2}], indirect=True)
def test_a_cooled_off_client_is_refused_even_with_credentials_the_cache_holds(relay, acme):
    user, password = acme
    log_in(relay, user.username, password).quit()
    assert refused(relay, user.username, "wrong") == 535
    assert refused(relay, user.username, "wrong") == 421  # the cool-off starts
    with pytest.raises(smtplib.SMTPConnectError) as caught:
        log_in(relay, user.username, password)
    assert caught.value.smtp_code == 421
    assert queries(relay) == 3  # the first login and the wrong passwords


@pytest.mark.parametrize("relay", [{"session_check_seconds": 0.1}], indirect=True)
def test_the_timer_checks_kept_logins_with_no_session_open(relay, acme):
    user, password = acme
    log_in(relay, user.username, password).quit()  # no connection stays logged in
    checks = relay.server.session_watch.checks
    smtp_users.set_active(user, False)
    deadline = time.monotonic() + 10
    while len(cache(relay)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(cache(relay)) == 0
    assert relay.server.session_watch.checks > checks
    assert refused(relay, user.username, password) == 535
