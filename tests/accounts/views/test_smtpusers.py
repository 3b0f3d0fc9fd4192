"""SMTP+ users console: list, create, detail, edit, enable/disable, delete."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.actions.smtp_users import create_smtp_user
from accounts.models import AuditEvent, SmtpUser
from relay.models import RelayNode
from relay.smtp.login import log_in
from tests.conftest import login
from tests.senders import authorize, authorize_email

pytestmark = pytest.mark.django_db


def url(name: str, *args: object) -> str:
    return reverse(f"accounts:{name}", args=args)


# --- list -------------------------------------------------------------------------------


def test_the_list_shows_name_username_status_senders_and_last_login(alice_client, cast):
    cast.acme_smtp.last_login_at = timezone.now()
    cast.acme_smtp.last_login_ip = "198.51.100.7"
    cast.acme_smtp.save()
    authorize_email(cast.acme_smtp, "news@acme.test")
    html = alice_client.get(url("smtpuser_list")).content.decode()
    assert "Acme web shop" in html
    assert cast.acme_smtp.username in html
    assert 'badge active' in html
    assert "1 domain, 1 address" in html
    assert "198.51.100.7" in html


def test_the_list_counts_each_users_domains_and_addresses_without_joining_them(
    alice_client, cast
):
    for domain in ("shop.acme.test", "news.acme.test"):
        authorize(cast.acme_smtp, domain)
    for email in ("a@other.test", "b@other.test", "c@other.test", "d@other.test"):
        authorize_email(cast.acme_smtp, email)
    with CaptureQueriesContext(connection) as queries:
        html = alice_client.get(url("smtpuser_list")).content.decode()
    assert "3 domains, 4 addresses" in html
    listing = [q["sql"] for q in queries.captured_queries if 'FROM "accounts_smtpuser"' in q["sql"]]
    # Counted per user in subqueries: no domains x addresses rows per user to count.
    joined = [q for q in listing
              if 'JOIN "accounts_authorizeddomain"' in q or 'JOIN "accounts_authorizedemail"' in q]
    assert listing and not joined, listing


def test_a_user_without_senders_is_flagged_in_red_on_the_list(alice_client, cast):
    create_smtp_user(cast.acme, name="Newsletter")
    html = alice_client.get(url("smtpuser_list")).content.decode()
    row = html[html.index("Newsletter"):]
    row = row[: row.index("</tr>")]
    assert 'class="text-bad no-senders">cannot send: no authorized senders' in row
    shop_row = html[html.index("Acme web shop"):]
    assert "cannot send" not in shop_row[: shop_row.index("</tr>")]


def test_the_list_shows_disabled_users_as_disabled(alice_client, cast):
    cast.acme_smtp.active = False
    cast.acme_smtp.save()
    assert "badge inactive" in alice_client.get(url("smtpuser_list")).content.decode()


def test_the_list_shows_only_the_current_accounts_users(alice_client, cast):
    html = alice_client.get(url("smtpuser_list")).content.decode()
    assert "Globex CRM" not in html
    assert cast.globex_smtp.username not in html


def test_the_list_searches_by_name_or_username(alice_client, cast):
    other, _ = create_smtp_user(cast.acme, name="Billing")
    html = alice_client.get(url("smtpuser_list"), {"q": "bill"}).content.decode()
    assert "Billing" in html and "Acme web shop" not in html
    html = alice_client.get(url("smtpuser_list"), {"q": other.username}).content.decode()
    assert "Billing" in html


def test_a_viewer_sees_the_list_without_a_create_button(client, cast):
    html = login(client, cast.victor).get(url("smtpuser_list")).content.decode()
    assert "Acme web shop" in html
    assert url("smtpuser_create") not in html


def test_anonymous_visitors_are_sent_to_the_login_page(client, cast):
    response = client.get(url("smtpuser_list"))
    assert response.status_code == 302 and "/login/" in response["Location"]


# --- create -----------------------------------------------------------------------------


def test_creating_a_user_shows_its_password_once_on_the_spot(alice_client, cast):
    response = alice_client.post(
        url("smtpuser_create"),
        {"name": "Newsletter", "note": "Mailchimp export", "priority": "2", "hourly_limit": "500"},
        follow=True,  # to the user's page, which shows the password once
    )
    assert response.status_code == 200
    user = SmtpUser.objects.get(account=cast.acme, name="Newsletter")
    assert (user.note, user.priority, user.hourly_limit) == ("Mailchimp export", 2, 500)
    html = response.content.decode()
    assert f'<code id="cred-password">{user.get_password()}</code>' in html
    assert f'<code id="cred-username">{user.username}</code>' in html
    assert "no-store" in response["Cache-Control"]
    assert log_in(user.username, user.get_password(), None).result.ok
    event = AuditEvent.objects.get(action="smtpuser.create", target_id=str(user.pk))
    assert event.actor == cast.alice and event.account == cast.acme
    # The detail page, later, does not show it any more.
    later = alice_client.get(user.get_absolute_url()).content.decode()
    assert user.get_password() not in later


def test_an_admin_may_create_users(client, cast):
    response = login(client, cast.bob).post(url("smtpuser_create"), {"name": "Bob's", "priority": "3"},
                                                follow=True)
    assert response.status_code == 200
    assert SmtpUser.objects.filter(account=cast.acme, name="Bob's").exists()


@pytest.mark.parametrize("priority", ["0", "6", "x"])
def test_a_priority_outside_1_to_5_is_refused(alice_client, cast, priority):
    response = alice_client.post(url("smtpuser_create"), {"name": "N", "priority": priority})
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    assert not SmtpUser.objects.filter(name="N").exists()


def test_a_zero_hourly_limit_is_refused(alice_client, cast):
    alice_client.post(url("smtpuser_create"), {"name": "N", "priority": "3", "hourly_limit": "0"})
    assert not SmtpUser.objects.filter(name="N").exists()


def test_a_viewer_cannot_create_users(client, cast):
    viewer = login(client, cast.victor)
    assert viewer.get(url("smtpuser_create")).status_code == 403
    assert viewer.post(url("smtpuser_create"), {"name": "V", "priority": "3"}).status_code == 403
    assert not SmtpUser.objects.filter(name="V").exists()


# --- detail -----------------------------------------------------------------------------


def test_the_detail_page_shows_the_user_and_its_connection_settings(alice_client, cast, settings):
    settings.RELAY_HOSTNAME = "relay.acme.test"
    settings.RELAY_LISTEN = "0.0.0.0:25,587,2525,1025-1030"
    settings.RELAY_LISTEN_TLS = "0.0.0.0:465"
    settings.RELAY_TLS_CERT = "/etc/ssl/relay.pem"
    html = alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert '<code id="cred-host">relay.acme.test</code>' in html
    assert '<code id="cred-ports-starttls">25, 587, 1025-1030, 2525</code>' in html
    assert '<code id="cred-ports-implicit">465</code>' in html
    assert "as configured — no relay has reported in the last minute" in html
    assert "Start with port 587 (STARTTLS)" in html
    assert f'<code id="cred-username">{cast.acme_smtp.username}</code>' in html
    assert 'data-copy="#cred-host"' in html and 'data-copy="#cred-username"' in html
    assert cast.acme_smtp_password not in html


def test_the_detail_page_shows_the_ports_a_live_relay_reported(alice_client, cast, settings):
    settings.RELAY_LISTEN = "127.0.0.1:2525"
    RelayNode.objects.create(
        node_id="mx1:42", hostname="mx1",
        listeners=[{"host": "0.0.0.0", "port": 587, "tls": "starttls"},
                   {"host": "0.0.0.0", "port": 465, "tls": "implicit"}],
    )
    html = alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert '<code id="cred-ports-starttls">587</code>' in html
    assert "2525" not in html
    assert "as configured" not in html


def test_a_relay_silent_for_over_a_minute_does_not_count(alice_client, cast, settings):
    settings.RELAY_LISTEN = "127.0.0.1:2525"
    RelayNode.objects.create(
        node_id="mx1:42", hostname="mx1", heartbeat=timezone.now() - timedelta(minutes=5),
        listeners=[{"host": "0.0.0.0", "port": 587, "tls": "starttls"}],
    )
    html = alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert "as configured — no relay has reported in the last minute" in html
    assert '<code id="cred-ports-none">2525</code>' in html


def test_the_detail_page_warns_in_red_when_the_user_cannot_send(alice_client, cast):
    user, _ = create_smtp_user(cast.acme, name="Empty")
    html = alice_client.get(user.get_absolute_url()).content.decode()
    assert "This user cannot send: no authorized senders." in html
    html = alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert "no authorized senders" not in html


def test_a_viewer_sees_the_detail_page_read_only(client, cast):
    html = login(client, cast.victor).get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert cast.acme_smtp.username in html
    for name in ("smtpuser_edit", "smtpuser_delete", "smtpuser_set_active", "smtpuser_reveal",
                 "smtpuser_reset_password", "smtpuser_senders_add"):
        assert url(name, cast.acme_smtp.pk) not in html, name
    assert "Only owners and admins can reveal passwords." in html


def test_names_and_notes_are_html_escaped(alice_client, cast):
    evil = "<script>alert(1)</script>"
    user, _ = create_smtp_user(cast.acme, name=evil, note=evil)
    for page in (url("smtpuser_list"), user.get_absolute_url(), url("smtpuser_edit", user.pk),
                 url("smtpuser_delete", user.pk)):
        html = alice_client.get(page).content.decode()
        assert evil not in html, page
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, page


# --- edit, enable/disable ---------------------------------------------------------------


def test_edit_saves_the_fields_and_audits_what_changed(alice_client, cast):
    user = cast.acme_smtp
    response = alice_client.post(
        url("smtpuser_edit", user.pk),
        {"name": "Shop", "note": "new note", "priority": "1", "hourly_limit": "", "active": "on"},
    )
    assert response.status_code == 302 and response["Location"] == user.get_absolute_url()
    user.refresh_from_db()
    assert (user.name, user.note, user.priority, user.hourly_limit, user.active) == (
        "Shop", "new note", 1, None, True)
    event = AuditEvent.objects.get(action="smtpuser.edit")
    assert event.details["changed"]["name"] == ["Acme web shop", "Shop"]
    assert event.details["changed"]["priority"] == [3, 1]
    assert event.actor == cast.alice and event.ip == "127.0.0.1"


def test_unticking_active_in_the_edit_form_disables_the_user(alice_client, cast):
    user = cast.acme_smtp
    alice_client.post(url("smtpuser_edit", user.pk), {"name": user.name, "priority": "3"})
    user.refresh_from_db()
    assert not user.active
    assert AuditEvent.objects.filter(action="smtpuser.disable", target_id=str(user.pk)).exists()
    assert not log_in(user.username, cast.acme_smtp_password, None).result.ok


def test_the_edit_form_shows_the_current_values(alice_client, cast):
    html = alice_client.get(url("smtpuser_edit", cast.acme_smtp.pk)).content.decode()
    assert 'value="Acme web shop"' in html
    assert 'id="id_active" checked' in html


def test_disable_and_enable_are_posts_and_audited(alice_client, cast):
    user = cast.acme_smtp
    assert alice_client.get(url("smtpuser_set_active", user.pk)).status_code == 405
    alice_client.post(url("smtpuser_set_active", user.pk), {"active": "0"})
    user.refresh_from_db()
    assert not user.active
    assert log_in(user.username, cast.acme_smtp_password, None).result.reason == "user disabled"
    alice_client.post(url("smtpuser_set_active", user.pk), {"active": "1"})
    user.refresh_from_db()
    assert user.active
    actions = list(AuditEvent.objects.filter(target_id=str(user.pk)).values_list("action", flat=True))
    assert actions[:2] == ["smtpuser.enable", "smtpuser.disable"]


def test_a_viewer_cannot_edit_or_disable(client, cast):
    viewer = login(client, cast.victor)
    user = cast.acme_smtp
    assert viewer.get(url("smtpuser_edit", user.pk)).status_code == 403
    assert viewer.post(url("smtpuser_edit", user.pk), {"name": "X", "priority": "3"}).status_code == 403
    assert viewer.post(url("smtpuser_set_active", user.pk), {"active": "0"}).status_code == 403
    user.refresh_from_db()
    assert user.name == "Acme web shop" and user.active


# --- delete -----------------------------------------------------------------------------


def test_delete_asks_for_confirmation_then_deletes_on_post(alice_client, cast):
    user = cast.acme_smtp
    page = alice_client.get(url("smtpuser_delete", user.pk))
    assert page.status_code == 200
    assert "Delete SMTP+ user Acme web shop?" in page.content.decode()
    assert SmtpUser.objects.filter(pk=user.pk).exists()
    response = alice_client.post(url("smtpuser_delete", user.pk))
    assert response.status_code == 302 and response["Location"] == url("smtpuser_list")
    assert not SmtpUser.objects.filter(pk=user.pk).exists()
    event = AuditEvent.objects.get(action="smtpuser.delete")
    assert event.target_id == str(user.pk) and user.username in event.target_label
    assert event.details["domains"] == ["acme.test"]
    assert not log_in(user.username, cast.acme_smtp_password, None).result.ok


def test_a_viewer_cannot_delete(client, cast):
    assert login(client, cast.victor).post(url("smtpuser_delete", cast.acme_smtp.pk)).status_code == 403
    assert SmtpUser.objects.filter(pk=cast.acme_smtp.pk).exists()


# --- isolation and CSRF -----------------------------------------------------------------


def other_accounts_urls(cast) -> list[str]:
    pk = cast.globex_smtp.pk
    domain = cast.globex_smtp.authorized_domains.get()
    email = authorize_email(cast.globex_smtp, "crm@globex.test")
    return [
        url("smtpuser_detail", pk), url("smtpuser_edit", pk), url("smtpuser_set_active", pk),
        url("smtpuser_delete", pk), url("smtpuser_reveal", pk), url("smtpuser_reset_password", pk),
        url("smtpuser_senders_add", pk), url("smtpuser_send_as", pk),
        url("smtpuser_domain_remove", pk, domain.pk), url("smtpuser_domain_subdomains", pk, domain.pk),
        url("smtpuser_email_remove", pk, email.pk),
    ]


def test_another_accounts_user_is_a_404_for_every_page_and_action(alice_client, cast):
    session = alice_client.session
    session["smtpplus_reauth"] = {"user": cast.alice.pk, "at": timezone.now().timestamp()}
    session.save()
    for page in other_accounts_urls(cast):
        assert alice_client.get(page).status_code == 404, page
        assert alice_client.post(page, {"active": "0", "domains": "x.test",
                                        "include_subdomains": "1"}).status_code == 404, page
    cast.globex_smtp.refresh_from_db()
    assert cast.globex_smtp.active
    assert cast.globex_smtp.authorized_domains.count() == 1
    assert not AuditEvent.objects.filter(account=cast.globex).exclude(
        action__in=["account.create", "smtpuser.create"]).exists()


def test_posts_without_a_csrf_token_are_refused(cast):
    client = login(Client(enforce_csrf_checks=True), cast.alice)
    user = cast.acme_smtp
    for page, data in [
        (url("smtpuser_create"), {"name": "X", "priority": "3"}),
        (url("smtpuser_set_active", user.pk), {"active": "0"}),
        (url("smtpuser_delete", user.pk), {}),
        (url("smtpuser_edit", user.pk), {"name": "X", "priority": "3"}),
    ]:
        assert client.post(page, data).status_code == 403, page
    user.refresh_from_db()
    assert user.active and user.name == "Acme web shop"
    assert not SmtpUser.objects.filter(name="X").exists()


def test_one_unencrypted_port_reads_plainly(alice_client, cast, settings):
    settings.RELAY_HOSTNAME = "relay.acme.test"
    settings.RELAY_LISTEN = "0.0.0.0:2525"
    settings.RELAY_LISTEN_TLS = ""
    settings.RELAY_TLS_CERT = ""
    html = alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert "encryption: none" in html and "None (no encryption)" not in html
    assert "Start with port 2525 (no encryption)." in html
    assert "try another port" not in html


def test_several_ports_suggest_trying_another(alice_client, cast, settings):
    settings.RELAY_LISTEN = "0.0.0.0:587,2525"
    settings.RELAY_TLS_CERT = "/etc/ssl/relay.pem"
    html = alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert "Start with port 587 (STARTTLS); if your network blocks it, try another port above." in html


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1", "relay.localhost"])
def test_a_local_relay_hostname_is_flagged_for_remote_apps(alice_client, cast, settings, host):
    settings.RELAY_HOSTNAME = host
    html = alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert 'id="host-is-local"' in html
    assert "remote applications cannot reach the relay with it" in html


def test_a_public_relay_hostname_is_not_flagged(alice_client, cast, settings):
    settings.RELAY_HOSTNAME = "relay.acme.test"
    assert 'id="host-is-local"' not in alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
