"""An admin's change applies to sessions that are already logged in.

The tests run the relay's check of logged-in users at a chosen moment
(`check_now(relay)`) instead of waiting for its timer, except the one that proves the
timer runs it by itself.
"""

from __future__ import annotations

import io
import smtplib
import time

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.actions import senders, smtp_users
from accounts.models import SmtpUser
from relay.models import EventKind, Message, RelayEvent
from relay.smtp import revocation
from tests.senders import own
from tests.smtp_relay import message

# No timer check during a test unless it asks for one.
NO_TIMER = {"session_check_seconds": 3600}


def logged_in(relay, user, password) -> smtplib.SMTP:
    smtp = smtplib.SMTP(relay.host, relay.port, timeout=10)
    smtp.login(user.username, password)
    return smtp


def check_now(relay) -> None:
    relay.call(relay.server.session_watch.check)


def assert_closed(smtp: smtplib.SMTP) -> None:
    assert smtp.sock is not None
    assert smtp.sock.recv(1) == b""  # EOF: the relay closed the connection


def revoked_event(relay) -> RelayEvent:
    relay.flush()
    return RelayEvent.objects.get(kind=EventKind.SESSION_REVOKED)


def send(smtp: smtplib.SMTP, from_: str = "shop@acme.test") -> tuple[int, bytes]:
    code, reply = smtp.mail(from_)
    if code != 250:
        return code, reply
    assert smtp.rcpt("someone@example.net")[0] == 250
    return smtp.data(message(from_=f"Shop <{from_}>"))


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_it_closes_an_open_session_with_421_after_a_password_reset(relay, cast):
    user = cast.acme_smtp
    smtp = logged_in(relay, user, cast.acme_smtp_password)
    assert smtp.noop()[0] == 250
    smtp_users.reset_password(user)
    check_now(relay)
    code, reply = smtp.noop()
    assert code == 421
    assert reply.decode() == (
        f"4.7.0 SMTP+ user {user.username} had its password changed: log in again with "
        "the new password; since this connection logged in, closing"
    )
    assert_closed(smtp)
    event = revoked_event(relay)
    assert event.smtp_user == user
    assert event.account == cast.acme
    assert event.username == user.username
    assert event.reason == "password reset since login"
    assert event.reply == f"421 {reply.decode()}"


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_it_refuses_the_next_mail_from_with_421_after_the_user_is_disabled(relay, cast):
    user = cast.acme_smtp
    smtp = logged_in(relay, user, cast.acme_smtp_password)
    smtp_users.set_active(user, False)
    check_now(relay)
    code, reply = smtp.mail("shop@acme.test")
    assert code == 421
    assert reply.decode() == (
        f"4.7.0 SMTP+ user {user.username} was disabled by an admin since this "
        "connection logged in, closing"
    )
    assert_closed(smtp)
    event = revoked_event(relay)
    assert (event.smtp_user, event.reason) == (user, "SMTP+ user disabled since login")
    assert not Message.objects.exists()


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_it_closes_a_deleted_users_session_with_421_not_a_temporary_error(relay, cast):
    user = cast.acme_smtp
    username = user.username
    smtp = logged_in(relay, user, cast.acme_smtp_password)
    smtp_users.delete_smtp_user(user)
    check_now(relay)
    code, reply = smtp.mail("shop@acme.test")
    assert code == 421
    assert reply.decode() == (
        f"4.7.0 SMTP+ user {username} was deleted by an admin since this connection "
        "logged in, closing"
    )
    assert_closed(smtp)
    event = revoked_event(relay)
    # The user row is gone; the event still belongs to its account.
    assert (event.smtp_user, event.account, event.username) == (None, cast.acme, username)
    assert event.reason == "SMTP+ user deleted since login"


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_it_records_the_event_of_a_session_whose_account_was_deleted(relay, cast):
    smtp = logged_in(relay, cast.acme_smtp, cast.acme_smtp_password)
    cast.acme.delete()
    check_now(relay)
    assert smtp.noop()[0] == 421
    assert_closed(smtp)
    event = revoked_event(relay)
    assert (event.smtp_user, event.account) == (None, None)


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_it_cuts_off_a_session_when_the_command_line_resets_the_password(relay, cast):
    smtp = logged_in(relay, cast.acme_smtp, cast.acme_smtp_password)
    call_command("smtpuser", "reset-password", cast.acme_smtp.username, stdout=io.StringIO())
    check_now(relay)
    assert smtp.noop()[0] == 421
    assert_closed(smtp)


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_it_judges_the_next_mail_from_by_the_senders_authorized_now(relay, cast):
    user = cast.acme_smtp
    smtp = logged_in(relay, user, cast.acme_smtp_password)
    assert send(smtp)[0] == 250
    senders.remove_sender(user.authorized_domains.get(domain="acme.test"))
    senders.add_senders(user, emails_text="boss@acme.test")
    check_now(relay)
    code, reply = smtp.mail("shop@acme.test")
    assert code == 550
    assert reply.startswith(b"5.7.1 Sender <shop@acme.test> is not authorized")
    assert smtp.rset()[0] == 250  # the session goes on, under the new rules
    assert send(smtp, "boss@acme.test")[0] == 250
    relay.flush()
    assert RelayEvent.objects.filter(kind=EventKind.SENDER_REJECTED).count() == 1
    assert not RelayEvent.objects.filter(kind=EventKind.SESSION_REVOKED).exists()


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_it_judges_the_from_header_at_end_of_data_by_the_senders_authorized_now(relay, cast):
    user = cast.acme_smtp
    senders.add_senders(user, emails_text="boss@acme.test")
    smtp = logged_in(relay, user, cast.acme_smtp_password)
    assert smtp.mail("boss@acme.test")[0] == 250
    assert smtp.rcpt("someone@example.net")[0] == 250
    entry = user.authorized_domains.get(domain="acme.test")
    own(cast.acme.pk, "acme.test", include_subdomains=True)
    senders.set_include_subdomains(entry, True)
    senders.remove_sender(entry)
    check_now(relay)
    code, reply = smtp.data(message(from_="Shop <shop@acme.test>"))
    assert code == 550
    assert b"<shop@acme.test> in the From: header is not authorized" in reply
    assert not Message.objects.exists()


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_it_refuses_a_message_whose_user_was_disabled_during_its_upload(relay, cast):
    user = cast.acme_smtp
    smtp = logged_in(relay, user, cast.acme_smtp_password)
    assert smtp.mail("shop@acme.test")[0] == 250
    assert smtp.rcpt("someone@example.net")[0] == 250
    assert smtp.docmd("DATA")[0] == 354
    smtp.send(message())
    smtp_users.set_active(user, False)
    check_now(relay)
    smtp.send(b".\r\n")
    code, reply = smtp.getreply()
    assert code == 421
    assert b"was disabled by an admin" in reply
    assert_closed(smtp)
    assert not Message.objects.exists()
    assert revoked_event(relay).smtp_user == user


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_it_leaves_the_sessions_of_unchanged_users_alone(relay, cast):
    acme = logged_in(relay, cast.acme_smtp, cast.acme_smtp_password)
    globex = logged_in(relay, cast.globex_smtp, cast.globex_smtp_password)
    smtp_users.reset_password(cast.globex_smtp)
    # A change that does not touch the credentials: the session takes it and goes on.
    smtp_users.update_smtp_user(cast.acme_smtp, {"name": "Renamed", "priority": 1})
    check_now(relay)
    assert send(acme)[0] == 250
    assert Message.objects.get().recipients.get().priority == 1
    assert globex.noop()[0] == 421
    assert_closed(globex)
    acme.quit()
    event = revoked_event(relay)
    assert event.smtp_user == cast.globex_smtp


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_a_session_logged_in_after_the_reset_is_not_cut_off(relay, cast):
    user = cast.acme_smtp
    old = logged_in(relay, user, cast.acme_smtp_password)
    password = smtp_users.reset_password(user)
    new = logged_in(relay, user, password)
    check_now(relay)
    assert old.noop()[0] == 421
    assert send(new)[0] == 250
    new.quit()


@pytest.mark.parametrize("relay", [NO_TIMER], indirect=True)
def test_it_checks_no_database_per_message(relay, cast, monkeypatch):
    reads: list[int] = []
    real = revocation.read_changes

    def counting(held):
        reads.append(len(held))
        return real(held)

    monkeypatch.setattr(revocation, "read_changes", counting)
    acme = logged_in(relay, cast.acme_smtp, cast.acme_smtp_password)
    globex = logged_in(relay, cast.globex_smtp, cast.globex_smtp_password)
    for _ in range(25):
        assert send(acme)[0] == 250
        assert send(globex, "crm@globex.test")[0] == 250
    assert reads == []  # within one check interval, however many messages
    check_now(relay)
    assert reads == [2]  # one read for every logged-in user
    acme.quit()
    globex.quit()


def test_one_query_reads_the_versions_of_every_unchanged_user(transactional_db, cast):
    held = {
        u.pk: revocation.Held(u.username, u.account_id, {u.version})
        for u in (cast.acme_smtp, cast.globex_smtp)
    }
    with CaptureQueriesContext(connection) as queries:
        assert revocation.read_changes(held) == {}
    assert len(queries) == 1
    smtp_users.set_active(cast.globex_smtp, False)
    with CaptureQueriesContext(connection) as queries:
        changed = revocation.read_changes(held)
    assert list(changed) == [cast.globex_smtp.pk]
    assert len(queries) == 2  # plus the login query of the one user that changed


def test_the_relays_own_timer_cuts_off_a_disabled_users_session(start_relay, cast):
    relay = start_relay()
    assert relay.config.session_check_seconds == revocation.CHECK_SECONDS
    smtp = logged_in(relay, cast.acme_smtp, cast.acme_smtp_password)
    smtp_users.set_active(cast.acme_smtp, False)
    # Not a timing assertion: a generous deadline for the check that runs every second.
    deadline = time.monotonic() + 15
    code = 250
    while code == 250 and time.monotonic() < deadline:
        time.sleep(0.1)
        code = smtp.noop()[0]
    assert code == 421
    assert_closed(smtp)


@pytest.mark.parametrize("change, versions", [
    (lambda u: smtp_users.reset_password(u), (1, 1)),
    (lambda u: smtp_users.set_active(u, False), (1, 0)),
    (lambda u: smtp_users.update_smtp_user(u, {"hourly_limit": 5}), (1, 0)),
    (lambda u: senders.add_senders(u, domains_text="example.org"), (1, 0)),
    (lambda u: senders.remove_sender(u.authorized_domains.get()), (1, 0)),
    (lambda u: senders.set_include_subdomains(u.authorized_domains.get(), True), (1, 0)),
    (lambda u: smtp_users.update_smtp_user(u, {"priority": u.priority}), (0, 0)),
    (lambda u: senders.add_senders(u, domains_text="acme.test"), (0, 0)),
])
def test_every_change_a_session_must_see_bumps_the_users_version(db, cast, change, versions):
    user = cast.acme_smtp
    own(cast.acme.pk, "example.org")  # only a domain the account owns can be authorized
    own(cast.acme.pk, "acme.test", include_subdomains=True)  # and only its subdomains so
    before = (user.version, user.password_version)
    change(SmtpUser.objects.get(pk=user.pk))
    user.refresh_from_db()
    assert (user.version - before[0], user.password_version - before[1]) == versions

