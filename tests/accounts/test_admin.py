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


def _domain_with_key_and_event(cast):
    from accounts.actions.dkim_keys import ensure_keys
    from accounts.models import DomainEvent, DomainEventKind, SendingDomain

    domain = SendingDomain.objects.get(account=cast.acme, domain="acme.test")
    [key] = ensure_keys(domain)
    event = DomainEvent.objects.create(account=cast.acme, sending_domain=domain,
                                       domain=domain.domain, kind=DomainEventKind.VERIFIED,
                                       details={"reason": "acme.test verified by its record"})
    return domain, key, event


def test_sending_domains_dkim_keys_and_domain_events_are_shown_without_the_private_key(
    client, cast
):
    from accounts.domains.dkim import decrypt_private_key

    domain, key, event = _domain_with_key_and_event(cast)
    login(client, User.objects.create_superuser("op@example.test", "op@example.test", PASSWORD))
    pem = decrypt_private_key(key.private_key_encrypted).decode()
    # The PEM's body as one line (its lines alone may be part of the public key, which the
    # private key's encoding holds too).
    body = "".join(line for line in pem.splitlines() if "-----" not in line)
    pages = [
        reverse("admin:accounts_sendingdomain_changelist"),
        reverse("admin:accounts_sendingdomain_change", args=[domain.pk]),
        reverse("admin:accounts_dkimkey_changelist"),
        reverse("admin:accounts_dkimkey_change", args=[key.pk]),
        reverse("admin:accounts_domainevent_changelist"),
        reverse("admin:accounts_domainevent_change", args=[event.pk]),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        html = response.content.decode()
        assert "acme.test" in html, url
        assert key.private_key_encrypted not in html, url
        assert body not in html and body[-200:] not in html, url
        assert "private_key" not in html and "PRIVATE KEY" not in html, url
    detail = client.get(reverse("admin:accounts_sendingdomain_change", args=[domain.pk]))
    html = detail.content.decode()
    assert key.selector in html and "acme.test verified by its record" in html
    key_page = client.get(reverse("admin:accounts_dkimkey_change", args=[key.pk])).content.decode()
    assert key.public_key in key_page


def test_sending_domains_dkim_keys_and_domain_events_are_read_only_in_the_admin(client, cast):
    from accounts.models import DkimKey, DomainEvent, SendingDomain

    domain, key, event = _domain_with_key_and_event(cast)
    login(client, User.objects.create_superuser("op@example.test", "op@example.test", PASSWORD))
    for model, obj, tamper in (
        ("sendingdomain", domain, {"domain": "bank.example", "status": "verified",
                                   "account": cast.globex.pk, "include_subdomains": "on"}),
        ("dkimkey", key, {"selector": "evil", "private_key_encrypted": "x", "state": "retired"}),
        ("domainevent", event, {"kind": "lapsed", "domain": "bank.example"}),
    ):
        change = client.get(reverse(f"admin:accounts_{model}_change", args=[obj.pk]))
        assert 'name="_save"' not in change.content.decode()
        assert client.post(reverse(f"admin:accounts_{model}_change", args=[obj.pk]),
                           tamper).status_code == 403
        assert client.post(reverse(f"admin:accounts_{model}_delete", args=[obj.pk]),
                           {"post": "yes"}).status_code == 403
        assert client.get(reverse(f"admin:accounts_{model}_add")).status_code == 403
    domain.refresh_from_db()
    assert (domain.domain, domain.account_id, domain.include_subdomains) == (
        "acme.test", cast.acme.pk, False)
    assert DkimKey.objects.get(pk=key.pk).private_key_encrypted == key.private_key_encrypted
    assert DkimKey.objects.get(pk=key.pk).selector == key.selector
    assert DomainEvent.objects.get(pk=event.pk).kind == event.kind
    assert SendingDomain.objects.filter(domain="bank.example").count() == 0


def test_console_users_and_staff_cannot_open_the_sending_domain_admin(client, cast):
    staff = User.objects.create_user("staff@example.test", "staff@example.test", PASSWORD,
                                     is_staff=True)
    for user in (staff, cast.alice):
        login(client, user)
        for model in ("sendingdomain", "dkimkey", "domainevent"):
            response = client.get(reverse(f"admin:accounts_{model}_changelist"))
            assert response.status_code == 302 and "/admin/login/" in response["Location"]
