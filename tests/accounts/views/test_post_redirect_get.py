"""Every console POST that changes something answers with a redirect: reloading the page
it lands on repeats nothing, and a new password is shown once, on that page."""

from __future__ import annotations

from django.urls import reverse

from accounts.models import AuditEvent, SmtpUser
from alerts.models import AlertRule
from tests.accounts.views.test_credentials import confirm, reset_url, reveal_url
from tests.alerts.test_views import FORM
from tests.conftest import login


def test_creating_a_user_redirects_and_a_reload_creates_nothing(alice_client, cast):
    response = alice_client.post(reverse("accounts:smtpuser_create"), {"name": "Shop", "priority": "3"})
    user = SmtpUser.objects.get(account=cast.acme, name="Shop")
    assert response.status_code == 302 and response["Location"] == user.get_absolute_url()
    page = alice_client.get(response["Location"])
    assert f'<code id="cred-password">{user.get_password()}</code>' in page.content.decode()
    assert "no-store" in page["Cache-Control"]
    # The reload is a GET of the same page: no second user, and the password is gone.
    again = alice_client.get(response["Location"]).content.decode()
    assert SmtpUser.objects.filter(account=cast.acme, name="Shop").count() == 1
    assert user.get_password() not in again


def test_the_password_is_not_kept_in_the_session(alice_client, cast):
    response = alice_client.post(reverse("accounts:smtpuser_create"), {"name": "Shop", "priority": "3"})
    user = SmtpUser.objects.get(account=cast.acme, name="Shop")
    stored = str(dict(alice_client.session.items()))
    assert user.get_password() not in stored
    assert response.status_code == 302


def test_a_reset_redirects_and_a_reload_does_not_reset_again(alice_client, cast):
    confirm(alice_client)
    response = alice_client.post(reset_url(cast.acme_smtp))
    assert response.status_code == 303
    assert response["Location"] == cast.acme_smtp.get_absolute_url() + "#credentials"
    cast.acme_smtp.refresh_from_db()
    new = cast.acme_smtp.get_password()
    assert new in alice_client.get(response["Location"]).content.decode()
    alice_client.get(response["Location"])
    cast.acme_smtp.refresh_from_db()
    assert cast.acme_smtp.get_password() == new
    assert AuditEvent.objects.filter(action="smtpuser.reset_password").count() == 1


def test_a_reveal_redirects_and_is_audited_once(alice_client, cast):
    confirm(alice_client)
    response = alice_client.post(reveal_url(cast.acme_smtp))
    assert response.status_code == 303
    assert cast.acme_smtp_password in alice_client.get(response["Location"]).content.decode()
    assert cast.acme_smtp_password not in alice_client.get(response["Location"]).content.decode()
    assert AuditEvent.objects.filter(action="smtpuser.reveal").count() == 1


def test_a_kept_password_is_shown_only_on_that_users_page(alice_client, cast):
    alice_client.post(reverse("accounts:smtpuser_create"), {"name": "Shop", "priority": "3"})
    other = alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert 'id="cred-password"' not in other


def test_adding_senders_with_errors_redirects_and_shows_the_result_once(alice_client, cast):
    url = reverse("accounts:smtpuser_senders_add", args=[cast.acme_smtp.pk])
    response = alice_client.post(url, {"domains": "ok.example bad..domain"})
    assert response.status_code == 302
    page = alice_client.get(response["Location"]).content.decode()
    assert "<li><code>bad..domain</code>: empty label (two dots in a row)</li>" in page
    assert "bad..domain" not in alice_client.get(response["Location"]).content.decode()


def test_resetting_a_webhook_secret_redirects_and_a_reload_keeps_the_secret(client, cast):
    login(client, cast.alice)
    created = client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": "https://hooks.example.com/a"})
    assert created.status_code == 302
    rule = AlertRule.objects.get(account=cast.acme, name=FORM["name"])
    client.get(created["Location"])  # the page that shows the first secret
    response = client.post(reverse("alerts:rule_reset_secret", args=[rule.pk]))
    assert response.status_code == 302
    rule.refresh_from_db()
    secret = rule.get_webhook_secret()
    assert secret in client.get(response["Location"]).content.decode()
    assert secret not in client.get(response["Location"]).content.decode()
    rule.refresh_from_db()
    assert rule.get_webhook_secret() == secret
