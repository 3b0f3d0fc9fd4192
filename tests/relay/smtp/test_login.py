"""The relay's login: one query for the user, its account and its authorized senders,
and every change (password, active flag, senders) applies at the very next login."""

from __future__ import annotations

import smtplib

import pytest

from accounts.actions.senders import add_senders, remove_sender
from accounts.actions.smtp_users import reset_password, set_active
from accounts.models import AuthorizedDomain, SendingDomain
from accounts.senders import SenderPolicy
from relay.smtp.login import load_login, log_in
from tests.senders import authorize, authorize_email, own
from tests.smtp_relay import message


def test_it_reads_the_user_its_account_and_its_senders_in_one_query(
    cast, django_assert_num_queries
):
    authorize(cast.acme_smtp, "corp.test", include_subdomains=True)
    authorize_email(cast.acme_smtp, "Ann@Other.test")
    with django_assert_num_queries(1):
        user, policy = load_login(cast.acme_smtp.username)
    assert user is not None and policy is not None
    assert user.pk == cast.acme_smtp.pk
    assert (user.account.pk, user.account.slug) == (cast.acme.pk, cast.acme.slug)
    assert (user.priority, user.hourly_limit, user.active) == (3, None, True)
    assert policy == SenderPolicy.load(cast.acme_smtp)
    assert policy.domains == {"acme.test"}
    assert policy.domains_with_subdomains == {"corp.test"}
    assert policy.emails == {"ann@other.test"}


def test_a_user_without_senders_gets_an_empty_policy(cast):
    cast.acme_smtp.authorized_domains.all().delete()
    _, policy = load_login(cast.acme_smtp.username)
    assert policy is not None and policy.empty
    assert not policy.check("shop@acme.test").allowed


def test_the_username_is_matched_without_case_or_surrounding_spaces(cast):
    user, _ = load_login(f"  {cast.acme_smtp.username.upper()} ")
    assert user is not None and user.pk == cast.acme_smtp.pk
    assert load_login("smtp-nobody") == (None, None)


def test_it_tells_wrong_password_unknown_user_and_disabled_user_apart(cast):
    username, password = cast.acme_smtp.username, cast.acme_smtp_password
    assert log_in(username, password, "192.0.2.1").result.ok
    assert log_in(username, "nope", None).result.reason == "wrong password"
    assert log_in("smtp-nobody", password, None).result.reason == "unknown user"
    set_active(cast.acme_smtp, False)
    outcome = log_in(username, password, None)
    assert outcome.result.reason == "user disabled" and outcome.policy is None


def test_a_successful_login_costs_one_query_once_the_last_login_is_recent(
    cast, django_assert_num_queries
):
    written: dict[int, float] = {}
    log_in(cast.acme_smtp.username, cast.acme_smtp_password, "192.0.2.1", True, written)
    with django_assert_num_queries(1):
        outcome = log_in(cast.acme_smtp.username, cast.acme_smtp_password, "192.0.2.1", True,
                         written)
    assert outcome.result.ok
    cast.acme_smtp.refresh_from_db()
    assert cast.acme_smtp.last_login_ip == "192.0.2.1"


def test_a_reset_password_and_a_disabled_user_apply_at_the_next_login(cast):
    username = cast.acme_smtp.username
    assert log_in(username, cast.acme_smtp_password, None).result.ok
    new = reset_password(cast.acme_smtp)
    assert log_in(username, cast.acme_smtp_password, None).result.reason == "wrong password"
    assert log_in(username, new, None).result.ok
    set_active(cast.acme_smtp, False)
    assert log_in(username, new, None).result.reason == "user disabled"


def test_sender_changes_apply_at_the_next_login_however_they_are_written(cast):
    username, password = cast.acme_smtp.username, cast.acme_smtp_password

    def allowed(address: str) -> bool:
        policy = log_in(username, password, None).policy
        assert policy is not None
        return policy.check(address).allowed

    assert not allowed("news@other.test")
    own(cast.acme.pk, "other.test")
    add_senders(cast.acme_smtp, domains_text="other.test")
    assert allowed("news@other.test")
    remove_sender(AuthorizedDomain.objects.get(smtp_user=cast.acme_smtp, domain="other.test"))
    assert not allowed("news@other.test")
    # Written directly (Django admin, a script): no version to bump, still seen.
    authorize_email(cast.acme_smtp, "news@other.test")
    assert allowed("news@other.test")
    AuthorizedDomain.objects.filter(smtp_user=cast.acme_smtp).update(include_subdomains=True)
    SendingDomain.objects.filter(account=cast.acme).update(include_subdomains=True)
    assert allowed("shop@eu.acme.test")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("relay", [{"login_cache": False}], indirect=True)
def test_without_the_login_cache_a_sender_authorized_between_two_connections_can_send_on_the_second(
        relay, cast):
    username, password = cast.acme_smtp.username, cast.acme_smtp_password
    with smtplib.SMTP(relay.host, relay.port) as smtp:
        smtp.login(username, password)
        with pytest.raises(smtplib.SMTPSenderRefused):
            smtp.sendmail("news@other.test", ["a@example.net"],
                          message(from_="news@other.test"))
    authorize(cast.acme_smtp, "other.test")
    with smtplib.SMTP(relay.host, relay.port) as smtp:
        smtp.login(username, password)
        assert smtp.sendmail("news@other.test", ["a@example.net"],
                             message(from_="news@other.test")) == {}
