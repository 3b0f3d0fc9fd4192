"""Django's admin: superusers only, and never an SMTP+ password."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.urls import reverse

from tests.conftest import PASSWORD, login


def test_superusers_browse_every_table_without_seeing_smtp_passwords(client, cast):
    login(client, User.objects.create_superuser("op@example.test", "op@example.test", PASSWORD))
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    for model in ("account", "membership", "invitation", "smtpuser", "auditevent"):
        assert client.get(reverse(f"admin:accounts_{model}_changelist")).status_code == 200
    for model in ("message", "recipient", "relayevent", "relaynode", "connectionstat"):
        assert client.get(reverse(f"admin:relay_{model}_changelist")).status_code == 200
    page = client.get(reverse("admin:accounts_smtpuser_change", args=[cast.acme_smtp.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert cast.acme_smtp.username in html
    cast.acme_smtp.refresh_from_db()
    for secret in (cast.acme_smtp_password, cast.acme_smtp.password_encrypted, cast.acme_smtp.password_digest):
        assert secret not in html
    assert "password_encrypted" not in html and "password_digest" not in html


def test_the_audit_log_is_read_only_in_the_admin(client, cast):
    login(client, User.objects.create_superuser("op@example.test", "op@example.test", PASSWORD))
    event = cast.acme.audit_events.first()
    url = reverse("admin:accounts_auditevent_change", args=[event.pk])
    client.post(url, {"action": "tampered"})
    event.refresh_from_db()
    assert event.action != "tampered"
    assert client.post(reverse("admin:accounts_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403


def test_staff_who_are_not_superusers_and_console_users_are_kept_out(client, cast):
    staff = User.objects.create_user("staff@example.test", "staff@example.test", PASSWORD, is_staff=True)
    for user in (staff, cast.alice):
        login(client, user)
        response = client.get(reverse("admin:accounts_smtpuser_changelist"))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_smtp_users_and_their_senders_are_read_only_in_the_admin(client, cast):
    login(client, User.objects.create_superuser("op@example.test", "op@example.test", PASSWORD))
    user = cast.acme_smtp
    url = reverse("admin:accounts_smtpuser_change", args=[user.pk])
    html = client.get(url).content.decode()
    assert "acme.test" in html  # the senders are shown
    assert 'name="authorized_domains-0-domain"' not in html and 'name="_save"' not in html
    response = client.post(url, {
        "account": cast.acme.pk, "name": "Renamed", "priority": 3, "active": "on",
        "authorized_domains-TOTAL_FORMS": "2", "authorized_domains-INITIAL_FORMS": "1",
        "authorized_domains-0-id": user.authorized_domains.get().pk,
        "authorized_domains-0-smtp_user": user.pk, "authorized_domains-0-domain": "acme.test",
        "authorized_domains-1-smtp_user": user.pk, "authorized_domains-1-domain": "Example.COM",
        "authorized_emails-TOTAL_FORMS": "0", "authorized_emails-INITIAL_FORMS": "0",
    })
    assert response.status_code == 403
    user.refresh_from_db()
    assert user.name == "Acme web shop"
    assert list(user.authorized_domains.values_list("domain", flat=True)) == ["acme.test"]
    delete = reverse("admin:accounts_smtpuser_delete", args=[user.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert client.get(reverse("admin:accounts_smtpuser_changelist")).status_code == 200
