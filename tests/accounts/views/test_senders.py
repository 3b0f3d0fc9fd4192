"""Authorized senders on the user's page, and the "can this user send as …?" form."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.actions import senders
from accounts.actions.smtp_users import create_smtp_user
from accounts.models import AuditEvent, AuthorizedDomain, AuthorizedEmail
from tests.conftest import login
from tests.senders import authorize_email, own

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _acme_owns_the_domains(cast):
    """Acme owns the domains these tests authorize (only owned domains can be)."""
    for domain in ('example.com', 'shop.example.com', 'a.test', 'b.test', 'c.test', 'd.test', 'e.test', 'www.example.com', 'old.test', 'new.test', 'xn--bcher-kva.example', 'x.test'):
        own(cast.acme.pk, domain, include_subdomains=True)


def add_url(user) -> str:
    return reverse("accounts:smtpuser_senders_add", args=[user.pk])


def domains_of(user) -> dict[str, bool]:
    return dict(user.authorized_domains.values_list("domain", "include_subdomains"))


def emails_of(user) -> list[str]:
    return list(user.authorized_emails.values_list("email", flat=True))


@pytest.fixture
def shop(cast):
    user, _ = create_smtp_user(cast.acme, name="Shop")
    return user


# --- adding -------------------------------------------------------------------------------


def test_valid_entries_are_saved_and_each_invalid_one_is_named_with_its_reason(alice_client, shop):
    response = alice_client.post(add_url(shop), {"domains": "example.com; shop.example.com, bad..domain"}, follow=True)
    assert response.status_code == 200
    assert domains_of(shop) == {"example.com": False, "shop.example.com": False}
    html = response.content.decode()
    assert "Saved: <code>example.com</code>, <code>shop.example.com</code>" in html
    assert "<li><code>bad..domain</code>: empty label (two dots in a row)</li>" in html
    # The bad entry is left in the box to be fixed.
    assert ">\nbad..domain</textarea>" in html


def test_semicolons_commas_spaces_and_newlines_all_separate_entries(alice_client, shop):
    alice_client.post(
        add_url(shop),
        {"domains": "a.test;b.test,c.test d.test\ne.test", "emails": "x@a.test; y@b.test,\nz@c.test"},
    )
    assert set(domains_of(shop)) == {"a.test", "b.test", "c.test", "d.test", "e.test"}
    assert sorted(emails_of(shop)) == ["x@a.test", "y@b.test", "z@c.test"]


def test_a_clean_submission_redirects_back_with_a_message(alice_client, shop):
    response = alice_client.post(add_url(shop), {"domains": "Example.COM."}, follow=True)
    assert response.redirect_chain[0][0] == f"{shop.get_absolute_url()}#senders"
    assert "Authorized: example.com." in response.content.decode()
    assert domains_of(shop) == {"example.com": False}


def test_one_audit_row_lists_everything_a_submission_added(alice_client, cast, shop):
    alice_client.post(add_url(shop), {"domains": "a.test b.test", "emails": "x@a.test"}, follow=True)
    event = AuditEvent.objects.get(action="smtpuser.senders_add")
    assert event.details == {
        "added_domains": ["a.test", "b.test"], "include_subdomains": False, "added_emails": ["x@a.test"],
    }
    assert (event.actor, event.account, event.target_id) == (cast.alice, cast.acme, str(shop.pk))


def test_duplicates_are_ignored_and_change_nothing(alice_client, shop):
    alice_client.post(add_url(shop), {"domains": "a.test", "emails": "X@a.test"}, follow=True)
    response = alice_client.post(
        add_url(shop), {"domains": "a.test A.TEST a.test.", "emails": "x@A.test x@a.test"}, follow=True
    )
    assert domains_of(shop) == {"a.test": False}
    assert emails_of(shop) == ["X@a.test"]
    assert "Already authorized: a.test, x@a.test." in response.content.decode()
    assert AuditEvent.objects.filter(action="smtpuser.senders_add").count() == 1


def test_www_domains_are_saved_with_a_warning(alice_client, shop):
    html = alice_client.post(add_url(shop), {"domains": "www.example.com"}, follow=True).content.decode()
    assert domains_of(shop) == {"www.example.com": False}
    assert "mail is usually sent from example.com, not www.example.com" in html


def test_an_address_in_the_domain_box_is_offered_as_an_address(alice_client, shop):
    html = alice_client.post(add_url(shop), {"domains": "sales@example.com"}, follow=True).content.decode()
    assert domains_of(shop) == {} and emails_of(shop) == []
    assert "These are email addresses, typed into the domain box" in html
    assert '<input type="hidden" name="emails" value="sales@example.com">' in html
    assert "Add as authorized address" in html
    # The one-click offer posts it as an address.
    alice_client.post(add_url(shop), {"emails": "sales@example.com"}, follow=True)
    assert emails_of(shop) == ["sales@example.com"]


def test_include_subdomains_applies_to_the_domains_added(alice_client, shop):
    alice_client.post(add_url(shop), {"domains": "old.test"}, follow=True)
    alice_client.post(add_url(shop), {"domains": "new.test old.test", "include_subdomains": "on"}, follow=True)
    assert domains_of(shop) == {"old.test": False, "new.test": True}


def test_idn_domains_are_stored_as_a_labels_and_shown_as_u_labels(alice_client, shop):
    alice_client.post(add_url(shop), {"domains": "Bücher.example", "emails": "info@bücher.example"}, follow=True)
    assert domains_of(shop) == {"xn--bcher-kva.example": False}
    assert emails_of(shop) == ["info@xn--bcher-kva.example"]
    html = alice_client.get(shop.get_absolute_url()).content.decode()
    assert "<td>bücher.example <span" in html
    assert "<td>info@bücher.example</td>" in html


def test_an_empty_submission_asks_for_something(alice_client, shop):
    response = alice_client.post(add_url(shop), {"domains": " ", "emails": ""}, follow=True)
    assert response.status_code == 400
    assert "Enter at least one domain or email address." in response.content.decode()


def test_invalid_addresses_are_named_with_their_reason(alice_client, shop):
    html = alice_client.post(add_url(shop), {"emails": "ok@a.test nobody"}, follow=True).content.decode()
    assert emails_of(shop) == ["ok@a.test"]
    assert "<li><code>nobody</code>: missing @</li>" in html


def test_entries_are_escaped_when_shown_back(alice_client, shop):
    html = alice_client.post(add_url(shop), {"domains": "<script>alert(1)</script>"}, follow=True).content.decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


# --- removing and toggling ----------------------------------------------------------------


def test_removing_a_domain_is_one_post_and_audited(alice_client, cast):
    domain = cast.acme_smtp.authorized_domains.get()
    remove = reverse("accounts:smtpuser_domain_remove", args=[cast.acme_smtp.pk, domain.pk])
    assert alice_client.get(remove).status_code == 405
    response = alice_client.post(remove)
    assert response.status_code == 302
    assert not AuthorizedDomain.objects.filter(pk=domain.pk).exists()
    event = AuditEvent.objects.get(action="smtpuser.senders_remove")
    assert event.details == {"removed_domains": ["acme.test"]}


def test_removing_an_address_is_one_post_and_audited(alice_client, cast):
    email = authorize_email(cast.acme_smtp, "news@acme.test")
    alice_client.post(reverse("accounts:smtpuser_email_remove", args=[cast.acme_smtp.pk, email.pk]))
    assert not AuthorizedEmail.objects.filter(pk=email.pk).exists()
    assert AuditEvent.objects.get(action="smtpuser.senders_remove").details == {
        "removed_emails": ["news@acme.test"]}


def test_an_internationalized_address_is_shown_and_removed_by_its_unicode_name(alice_client, cast):
    email = authorize_email(cast.acme_smtp, "ann@xn--bcher-kva.test")
    assert email.display == "ann@bücher.test"
    page = alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    remove = reverse("accounts:smtpuser_email_remove", args=[cast.acme_smtp.pk, email.pk])
    assert f'action="{remove}"' in page and 'aria-label="Remove ann@bücher.test"' in page
    response = alice_client.post(remove, follow=True)
    assert "Address ann@bücher.test is no longer authorized." in response.content.decode()


def test_sender_changes_read_the_user_and_its_account_once(alice_client, cast):
    own(cast.acme.pk, "acme.test", include_subdomains=True)
    domain = cast.acme_smtp.authorized_domains.get()
    email = authorize_email(cast.acme_smtp, "news@acme.test")
    posts = [
        (reverse("accounts:smtpuser_domain_subdomains", args=[cast.acme_smtp.pk, domain.pk]),
         {"include_subdomains": "1"}),
        (reverse("accounts:smtpuser_email_remove", args=[cast.acme_smtp.pk, email.pk]), {}),
        (reverse("accounts:smtpuser_domain_remove", args=[cast.acme_smtp.pk, domain.pk]), {}),
    ]
    for url, data in posts:
        with CaptureQueriesContext(connection) as queries:
            assert alice_client.post(url, data).status_code == 302
        sql = [q["sql"] for q in queries.captured_queries]
        # The account comes with the membership; the entry's user is the one looked up.
        assert not [q for q in sql if 'FROM "accounts_account"' in q], sql
        assert len([q for q in sql if 'FROM "accounts_smtpuser"' in q]) == 1, sql
    assert AuditEvent.objects.filter(action__startswith="smtpuser.senders_").count() == 3


def test_include_subdomains_can_be_toggled_per_domain(alice_client, cast):
    # The account's sending domain lets its subdomains be authorized (otherwise the
    # toggle is refused: tests/relay/troubleshooter/test_subdomain_verdicts.py).
    own(cast.acme.pk, "acme.test", include_subdomains=True)
    domain = cast.acme_smtp.authorized_domains.get()
    toggle = reverse("accounts:smtpuser_domain_subdomains", args=[cast.acme_smtp.pk, domain.pk])
    alice_client.post(toggle, {"include_subdomains": "1"})
    domain.refresh_from_db()
    assert domain.include_subdomains
    html = alice_client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert "exclude subdomains" in html
    alice_client.post(toggle, {"include_subdomains": "0"})
    domain.refresh_from_db()
    assert not domain.include_subdomains
    details = [e.details for e in AuditEvent.objects.filter(action="smtpuser.senders_subdomains")]
    assert details == [{"domain": "acme.test", "include_subdomains": False},
                       {"domain": "acme.test", "include_subdomains": True}]


def test_an_entry_of_another_user_cannot_be_removed_through_this_users_url(alice_client, cast, shop):
    domain = cast.acme_smtp.authorized_domains.get()
    remove = reverse("accounts:smtpuser_domain_remove", args=[shop.pk, domain.pk])
    assert alice_client.post(remove).status_code == 404
    assert AuthorizedDomain.objects.filter(pk=domain.pk).exists()


def test_another_accounts_entries_are_a_404(alice_client, cast):
    domain = cast.globex_smtp.authorized_domains.get()
    for name in ("smtpuser_domain_remove", "smtpuser_domain_subdomains"):
        # Both through Globex's user and smuggled under Acme's.
        for user_pk in (cast.globex_smtp.pk, cast.acme_smtp.pk):
            response = alice_client.post(reverse(f"accounts:{name}", args=[user_pk, domain.pk]),
                                         {"include_subdomains": "1"})
            assert response.status_code == 404
    domain.refresh_from_db()
    assert not domain.include_subdomains
    assert alice_client.post(add_url(cast.globex_smtp), {"domains": "x.test"}).status_code == 404
    assert set(domains_of(cast.globex_smtp)) == {"globex.test"}


def test_a_viewer_sees_senders_but_cannot_change_them(client, cast):
    viewer = login(client, cast.victor)
    domain = cast.acme_smtp.authorized_domains.get()
    html = viewer.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert "acme.test" in html and 'id="senders-form"' not in html and "Remove" not in html
    assert viewer.post(add_url(cast.acme_smtp), {"domains": "x.test"}).status_code == 403
    for name in ("smtpuser_domain_remove", "smtpuser_domain_subdomains"):
        url = reverse(f"accounts:{name}", args=[cast.acme_smtp.pk, domain.pk])
        assert viewer.post(url, {"include_subdomains": "1"}).status_code == 403
    assert domains_of(cast.acme_smtp) == {"acme.test": False}


def test_sender_changes_need_a_csrf_token(cast):
    client = login(Client(enforce_csrf_checks=True), cast.alice)
    domain = cast.acme_smtp.authorized_domains.get()
    assert client.post(add_url(cast.acme_smtp), {"domains": "x.test"}).status_code == 403
    remove = reverse("accounts:smtpuser_domain_remove", args=[cast.acme_smtp.pk, domain.pk])
    assert client.post(remove).status_code == 403
    assert domains_of(cast.acme_smtp) == {"acme.test": False}


# --- the functions behind the views -------------------------------------------------------


def test_add_senders_without_a_request_is_audited_as_the_command_line(shop):
    result = senders.add_senders(shop, domains_text="a.test, bad..x", emails_text="b@a.test")
    assert result.added_domains == ["a.test"] and result.added_emails == ["b@a.test"]
    assert result.domain_errors == [("bad..x", "empty label (two dots in a row)")]
    event = AuditEvent.objects.get(action="smtpuser.senders_add")
    assert event.actor is None and event.actor_label.startswith("command line")


def test_nothing_added_writes_no_audit_row(shop):
    result = senders.add_senders(shop, domains_text="bad..x")
    assert not result.changed
    assert not AuditEvent.objects.filter(action="smtpuser.senders_add").exists()


# --- can this user send as …? -------------------------------------------------------------


def send_as(client, user, address: str) -> str:
    url = reverse("accounts:smtpuser_send_as", args=[user.pk])
    return client.get(url, {"address": address}).content.decode()


def test_the_send_as_form_says_allowed_and_which_rule(alice_client, cast):
    html = send_as(alice_client, cast.acme_smtp, "Shop@ACME.test")
    assert "<strong>Allowed:</strong> domain acme.test is authorized" in html


def test_the_send_as_form_says_refused_and_why(alice_client, cast):
    html = send_as(alice_client, cast.acme_smtp, "shop@acme.test.evil.net")
    assert "<strong>Refused:</strong> neither the address shop@acme.test.evil.net" in html


def test_the_send_as_form_explains_a_user_without_senders(alice_client, shop):
    html = send_as(alice_client, shop, "a@b.test")
    assert f"SMTP+ user {shop.username} has no authorized senders" in html


def test_viewers_may_use_the_send_as_form(client, cast):
    html = send_as(login(client, cast.victor), cast.acme_smtp, "x@acme.test")
    assert "<strong>Allowed:</strong>" in html


def test_the_send_as_answer_is_escaped(alice_client, cast):
    html = send_as(alice_client, cast.acme_smtp, "<b>x</b>@acme.test")
    assert "<b>x</b>" not in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html


def test_a_pasted_name_and_address_saves_the_address_without_an_error(alice_client, shop):
    html = alice_client.post(add_url(shop), {"emails": "Alice <alice@acme.example>"},
                             follow=True).content.decode()
    assert emails_of(shop) == ["alice@acme.example"]
    assert "missing @" not in html
