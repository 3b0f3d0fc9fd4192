"""Revealing and resetting SMTP+ passwords behind a console re-authentication."""

from __future__ import annotations

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.messages import get_messages
from django.core.cache import cache
from django.test import Client
from django.urls import reverse

from accounts.models import AuditEvent
from accounts.views.credentials import REAUTH_SESSION_KEY
from relay.smtp.login import log_in
from tests.conftest import PASSWORD, login

pytestmark = pytest.mark.django_db

CONFIRM = reverse("accounts:confirm_password")


def reveal_url(user) -> str:
    return reverse("accounts:smtpuser_reveal", args=[user.pk])


def reset_url(user) -> str:
    return reverse("accounts:smtpuser_reset_password", args=[user.pk])


def confirm(client: Client, password: str = PASSWORD, next_url: str = ""):
    return client.post(CONFIRM, {"password": password, "next": next_url})


def reveals(action: str = "smtpuser.reveal") -> int:
    return AuditEvent.objects.filter(action=action).count()


def test_reveal_without_a_recent_reauthentication_goes_to_the_confirm_page(alice_client, cast):
    response = alice_client.post(reveal_url(cast.acme_smtp))
    assert response.status_code == 303
    location = urlsplit(response["Location"])
    assert location.path == CONFIRM
    assert parse_qs(location.query)["next"] == [reveal_url(cast.acme_smtp)]
    assert reveals() == 0
    page = alice_client.get(response["Location"]).content.decode()
    assert "To reveal the password of <strong>Acme web shop</strong>" in page


def test_a_wrong_console_password_is_refused(alice_client, cast):
    response = confirm(alice_client, "not my password", reveal_url(cast.acme_smtp))
    assert response.status_code == 200
    assert "That is not your password." in response.content.decode()
    assert REAUTH_SESSION_KEY not in alice_client.session
    assert alice_client.post(reveal_url(cast.acme_smtp)).status_code == 303
    assert reveals() == 0


def test_confirming_replays_the_reveal_and_shows_the_password(alice_client, cast):
    response = confirm(alice_client, next_url=reveal_url(cast.acme_smtp))
    # 307 keeps the method: the browser re-posts to the reveal action.
    assert response.status_code == 307
    assert response["Location"] == reveal_url(cast.acme_smtp)
    assert reveals() == 0


def test_the_whole_reveal_flow_ends_on_the_users_page_with_the_password(alice_client, cast):
    response = alice_client.post(reveal_url(cast.acme_smtp), follow=True)
    assert response.request["PATH_INFO"] == CONFIRM
    response = alice_client.post(
        CONFIRM, {"password": PASSWORD, "next": reveal_url(cast.acme_smtp)}, follow=True
    )
    html = response.content.decode()
    password = cast.acme_smtp.get_password()
    assert password == cast.acme_smtp_password
    assert f'<code id="cred-password">{password}</code>' in html
    assert 'data-copy="#cred-password"' in html
    assert "no-store" in response["Cache-Control"]
    # The reveal is replayed, then redirects to the user's page (a reload repeats nothing).
    assert [r[0] for r in response.redirect_chain] == [
        reveal_url(cast.acme_smtp), cast.acme_smtp.get_absolute_url() + "#credentials"]


def test_reveal_after_a_recent_reauthentication_is_immediate_and_audited(alice_client, cast):
    confirm(alice_client)
    response = alice_client.post(reveal_url(cast.acme_smtp), REMOTE_ADDR="203.0.113.9", follow=True)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert cast.acme_smtp_password in response.content.decode()
    event = AuditEvent.objects.get(action="smtpuser.reveal")
    assert (event.actor, event.account, event.target_id, event.ip) == (
        cast.alice, cast.acme, str(cast.acme_smtp.pk), "203.0.113.9")
    assert cast.acme_smtp_password not in str(event.details)


def test_the_reauthentication_expires(alice_client, cast, settings):
    settings.SMTPPLUS_REAUTH_SECONDS = 600
    confirm(alice_client)
    session = alice_client.session
    session[REAUTH_SESSION_KEY]["at"] = time.time() - 601
    session.save()
    assert alice_client.post(reveal_url(cast.acme_smtp)).status_code == 303
    assert reveals() == 0


def test_another_users_reauthentication_does_not_count(client, cast):
    bob = login(client, cast.bob)
    session = bob.session
    session[REAUTH_SESSION_KEY] = {"user": cast.alice.pk, "at": time.time()}
    session.save()
    assert bob.post(reveal_url(cast.acme_smtp)).status_code == 303


def test_reveal_is_post_only(alice_client, cast):
    confirm(alice_client)
    response = alice_client.get(reveal_url(cast.acme_smtp))
    assert response.status_code == 405
    assert cast.acme_smtp_password not in response.content.decode()
    assert alice_client.get(reset_url(cast.acme_smtp)).status_code == 405


def test_a_viewer_cannot_reveal_or_reset_even_after_confirming(client, cast):
    viewer = login(client, cast.victor)
    confirm(viewer)
    assert viewer.post(reveal_url(cast.acme_smtp)).status_code == 403
    assert viewer.post(reset_url(cast.acme_smtp)).status_code == 403
    html = viewer.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert 'id="reveal-password"' not in html and 'id="reset-password"' not in html
    assert log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok
    assert reveals() == 0


def test_an_admin_may_reveal(client, cast):
    bob = login(client, cast.bob)
    confirm(bob)
    assert cast.acme_smtp_password in bob.post(reveal_url(cast.acme_smtp), follow=True).content.decode()


def test_reset_requires_reauthentication_too(alice_client, cast):
    response = alice_client.post(reset_url(cast.acme_smtp))
    assert response.status_code == 303
    assert parse_qs(urlsplit(response["Location"]).query)["next"] == [reset_url(cast.acme_smtp)]
    assert log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok


def test_reset_shows_the_new_password_once_and_the_old_one_stops_working(alice_client, cast):
    old = cast.acme_smtp_password
    response = alice_client.post(
        CONFIRM, {"password": PASSWORD, "next": reset_url(cast.acme_smtp)}, follow=True
    )
    cast.acme_smtp.refresh_from_db()
    new = cast.acme_smtp.get_password()
    assert new != old
    html = response.content.decode()
    assert f'<code id="cred-password">{new}</code>' in html
    assert "The old one no longer works" in html
    assert "no-store" in response["Cache-Control"]
    assert not log_in(cast.acme_smtp.username, old, None).result.ok
    assert log_in(cast.acme_smtp.username, new, None).result.ok
    assert AuditEvent.objects.filter(action="smtpuser.reset_password", actor=cast.alice).count() == 1


def test_passwords_never_reach_urls_or_flash_messages(alice_client, cast):
    # Each POST redirects to a page that shows the password (followed here).
    created = alice_client.post(reverse("accounts:smtpuser_create"), {"name": "N", "priority": "3"},
                                follow=True)
    confirm(alice_client)
    responses = [
        created,
        alice_client.post(reveal_url(cast.acme_smtp), follow=True),
        alice_client.post(reset_url(cast.acme_smtp), follow=True),
    ]
    cast.acme_smtp.refresh_from_db()
    secrets = {cast.acme_smtp_password, cast.acme_smtp.get_password()}
    for response in responses:
        assert not any(s in url for s in secrets for url, _ in response.redirect_chain)
        assert not response.has_header("Location")
        stored = [m.message for m in get_messages(response.wsgi_request)]
        assert not any(s in m for s in secrets for m in stored)


def test_the_confirm_page_does_not_redirect_elsewhere(alice_client, cast):
    response = confirm(alice_client, next_url="https://evil.example/steal")
    assert response.status_code == 303
    assert response["Location"] == reverse("accounts:smtpuser_list")


def test_a_plain_next_page_is_reached_with_a_get_redirect(alice_client, cast):
    response = confirm(alice_client, next_url=cast.acme_smtp.get_absolute_url())
    assert response.status_code == 303
    assert response["Location"] == cast.acme_smtp.get_absolute_url()


def test_revealing_another_accounts_user_is_a_404_even_after_confirming(alice_client, cast):
    confirm(alice_client)
    response = alice_client.post(reveal_url(cast.globex_smtp))
    assert response.status_code == 404
    assert cast.globex_smtp_password not in response.content.decode()
    page = alice_client.get(CONFIRM, {"next": reveal_url(cast.globex_smtp)}).content.decode()
    assert "Globex" not in page


def test_reveal_and_reset_need_a_csrf_token(cast):
    client = login(Client(enforce_csrf_checks=True), cast.alice)
    session = client.session
    session[REAUTH_SESSION_KEY] = {"user": cast.alice.pk, "at": time.time()}
    session.save()
    assert client.post(reveal_url(cast.acme_smtp)).status_code == 403
    assert client.post(reset_url(cast.acme_smtp)).status_code == 403
    assert client.post(CONFIRM, {"password": PASSWORD}).status_code == 403
    assert reveals() == 0
    assert log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok


def test_the_confirm_page_stops_checking_passwords_after_too_many_wrong_ones(
    alice_client, cast, settings
):
    cache.clear()
    settings.CONSOLE_LOGIN_FAILURES_PER_USER = 3
    for _ in range(3):
        assert "That is not your password." in confirm(
            alice_client, "guess", reveal_url(cast.acme_smtp)).content.decode()
    # Even the right password is refused now: guessing has been cut off.
    response = confirm(alice_client, PASSWORD, reveal_url(cast.acme_smtp))
    assert response.status_code == 200
    assert "Too many failed logins" in response.content.decode()
    assert REAUTH_SESSION_KEY not in alice_client.session
    assert alice_client.post(reveal_url(cast.acme_smtp)).status_code == 303
    assert reveals() == 0
    cache.clear()


def test_failed_logins_and_failed_confirmations_share_one_count_per_address(
    client, cast, settings
):
    cache.clear()
    settings.CONSOLE_LOGIN_FAILURES_PER_IP = 3
    for i in range(3):
        client.post("/login/", {"username": f"user{i}@acme.test", "password": "wrong"})
    response = confirm(login(client, cast.alice), PASSWORD)
    assert "Too many failed logins" in response.content.decode()
    assert REAUTH_SESSION_KEY not in client.session
    cache.clear()


def test_behind_the_proxy_the_audit_log_records_the_forwarded_client(
    alice_client, cast, settings
):
    settings.BEHIND_TLS_PROXY = True
    confirm(alice_client)
    alice_client.post(reveal_url(cast.acme_smtp), REMOTE_ADDR="127.0.0.1",
                      HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.9")
    assert AuditEvent.objects.get(action="smtpuser.reveal").ip == "203.0.113.9"


def test_a_failed_reauthentication_is_audited_without_the_password(alice_client, cast):
    response = alice_client.post(CONFIRM, {"password": "not my password",
                                           "next": reveal_url(cast.acme_smtp)},
                                 REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200
    event = AuditEvent.objects.get(action="console.reauth_failed")
    assert (event.actor, event.account, event.ip, event.target_id) == (
        cast.alice, cast.acme, "203.0.113.9", str(cast.acme_smtp.pk))
    assert event.details == {"for": "reveal the password of"}
    assert "not my password" not in str(event.details) + event.target_label
    assert reveals() == 0


def test_a_successful_reauthentication_writes_no_failure(alice_client, cast):
    confirm(alice_client)
    assert not AuditEvent.objects.filter(action="console.reauth_failed").exists()
