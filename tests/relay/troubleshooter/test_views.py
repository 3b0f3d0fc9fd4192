"""The troubleshooter page and the one-click fix over HTTP."""

from __future__ import annotations

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.models import AuditEvent
from tests.relay.troubleshooter.helpers import (
    relay_sees_changes,
    send,
)
from tests.senders import own


# --- the page and the one-click fix over HTTP ---------------------------------------------
def page_url(user) -> str:
    return reverse("relay:troubleshoot", args=[user.pk])


def authorize_url(user) -> str:
    return reverse("relay:troubleshoot_authorize", args=[user.pk])


def test_the_page_shows_each_check_with_its_verdict_and_buttons(relay, cast, client):
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@example.org")
    relay.flush()
    client.force_login(cast.alice)
    html = client.get(page_url(cast.acme_smtp)).content.decode()
    assert '<section class="card check" id="check-sender_domain" data-status="problem">' in html
    assert '<section class="card check" id="check-relay" data-status="ok">' in html
    # acme.test has no DKIM key and was never checked: recipients' trust is a problem too.
    assert ('3 problems found:</span>\n  <a href="#check-sender_domain">Sender domain not '
            'authorized</a> · <a href="#check-sender_email">Sender email not authorized</a> · '
            '<a href="#check-trust">Recipients may not trust this user&#x27;s mail</a>\n') in html
    # example.org is not a domain of the account: no "Authorize" button, but an offer to
    # add it as a sending domain (secondary), with the warning about spoofing.
    assert ">Authorize example.org</button>" not in html
    assert '<input type="hidden" name="domain" value="example.org">' in html
    assert 'class="secondary">Add example.org as a sending domain and verify it</button>' in html
    assert "may be someone spoofing the domain: do not add or authorize it" in html
    assert reverse("subject_tool") in html
    assert reverse("accounts:smtpuser_detail", args=[cast.acme_smtp.pk]) in html


def test_the_page_reads_the_senders_and_the_live_relays_once(relay, cast, client):
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@example.org")
    relay.flush()
    client.force_login(cast.alice)
    with CaptureQueriesContext(connection) as queries:
        assert client.get(page_url(cast.acme_smtp)).status_code == 200
    for table in ("accounts_authorizeddomain", "accounts_authorizedemail", "relay_relaynode"):
        reads = [q["sql"] for q in queries if f'FROM "{table}"' in q["sql"]]
        assert len(reads) == 1, reads


def test_one_click_authorize_over_http_then_a_resend_succeeds(relay, cast, client):
    pw = cast.acme_smtp_password
    own(cast.acme.pk, "example.org")  # the account owns it: it may be authorized
    assert send(relay, cast.acme_smtp, pw, "info@example.org")[0] == 550
    relay.flush()
    client.force_login(cast.bob)
    response = client.post(authorize_url(cast.acme_smtp), {"kind": "domain", "value": "example.org"})
    assert response.status_code == 302
    assert response["Location"] == page_url(cast.acme_smtp) + "#check-sender_domain"
    audit = AuditEvent.objects.get(action="smtpuser.senders_add")
    assert audit.actor == cast.bob and audit.details["added_domains"] == ["example.org"]
    html = client.get(page_url(cast.acme_smtp)).content.decode()
    assert "example.org is now authorized." in html
    assert 'id="check-sender_domain" data-status="ok"' in html
    relay_sees_changes(relay)
    assert send(relay, cast.acme_smtp, pw, "info@example.org")[0] == 250


def test_authorizing_a_domain_the_account_does_not_own_is_refused_with_what_to_do(cast, client):
    client.force_login(cast.alice)
    response = client.post(authorize_url(cast.acme_smtp), {"kind": "domain", "value": "bank.test"},
                           follow=True)
    assert ("Could not authorize bank.test: bank.test is not a sending domain of this account: "
            "add it as a sending domain and verify it first") in response.content.decode()
    assert list(cast.acme_smtp.authorized_domains.values_list("domain", flat=True)) == ["acme.test"]


def test_an_invalid_value_is_refused_with_a_message(cast, client):
    client.force_login(cast.alice)
    response = client.post(authorize_url(cast.acme_smtp), {"kind": "domain", "value": "10.0.0.1"},
                           follow=True)
    assert "Could not authorize 10.0.0.1: IP addresses cannot be authorized" \
        in response.content.decode()
    assert list(cast.acme_smtp.authorized_domains.values_list("domain", flat=True)) == ["acme.test"]


def test_a_viewer_sees_the_checks_but_cannot_authorize(relay, cast, client):
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@example.org")
    relay.flush()
    client.force_login(cast.victor)
    html = client.get(page_url(cast.acme_smtp)).content.decode()
    assert 'data-status="problem"' in html
    assert authorize_url(cast.acme_smtp) not in html
    assert "An admin of the account can authorize senders." in html
    response = client.post(authorize_url(cast.acme_smtp), {"kind": "domain", "value": "example.org"})
    assert response.status_code == 403
    assert not cast.acme_smtp.authorized_domains.filter(domain="example.org").exists()


def test_another_accounts_user_is_not_found(cast, client):
    client.force_login(cast.charlie)
    assert client.get(page_url(cast.acme_smtp)).status_code == 404
    response = client.post(authorize_url(cast.acme_smtp), {"kind": "domain", "value": "evil.test"})
    assert response.status_code == 404
    assert not cast.acme_smtp.authorized_domains.filter(domain="evil.test").exists()


def test_authorize_is_post_only_and_the_page_needs_login(cast, client):
    assert client.get(page_url(cast.acme_smtp)).status_code == 302
    client.force_login(cast.alice)
    assert client.get(authorize_url(cast.acme_smtp)).status_code == 405


def test_the_users_page_and_the_dashboard_link_to_the_troubleshooter(relay, cast, client):
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@example.org")
    relay.flush()
    client.force_login(cast.victor)
    detail = client.get(reverse("accounts:smtpuser_detail", args=[cast.acme_smtp.pk]))
    assert page_url(cast.acme_smtp) in detail.content.decode()
    assert page_url(cast.acme_smtp) in client.get(reverse("dashboard")).content.decode()
