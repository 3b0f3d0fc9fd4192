"""The troubleshooter says what the relay does about subdomains: a user authorized for a
domain "with its subdomains" may send as a subdomain only when the account's sending
domain includes subdomains too. Each row of the table is tried over real SMTP, the
checks are run on what the relay recorded, and the fix the troubleshooter offers is
applied through the console until the relay takes the message."""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from accounts.models import AuthorizedDomain, SendingDomain
from accounts.senders import InvalidEntry
from relay.troubleshooter.base import OK, PROBLEM, Facts
from relay.troubleshooter.fixes import authorize_sender
from relay.troubleshooter.senders import check_has_senders, check_sender_domains
from tests.conftest import login
from tests.relay.troubleshooter.helpers import relay_sees_changes, run, send, text
from tests.senders import own

# (sending domain includes subdomains, user's entry includes subdomains, sender, relay takes it)
TABLE = [
    (False, False, "info@example.com", True),
    (False, False, "info@www.example.com", False),
    (False, True, "info@example.com", True),
    (False, True, "info@www.example.com", False),
    (False, True, "info@a.b.example.com", False),
    (True, False, "info@example.com", True),
    (True, False, "info@www.example.com", False),
    (True, True, "info@www.example.com", True),
    (True, True, "info@a.b.example.com", True),
]


def _setup(cast, sd_subdomains: bool, entry_subdomains: bool) -> SendingDomain:
    domain = own(cast.acme.pk, "example.com", include_subdomains=sd_subdomains)
    # The entry as it stands once the sending domain's option was turned off after the
    # entry's was turned on (both are possible from the console).
    AuthorizedDomain.objects.create(smtp_user=cast.acme_smtp, domain="example.com",
                                    include_subdomains=entry_subdomains)
    return domain


@pytest.mark.parametrize("sd_subdomains, entry_subdomains, sender, taken", TABLE)
def test_the_troubleshooters_verdict_is_the_relays(
    relay, cast, sd_subdomains, entry_subdomains, sender, taken
):
    _setup(cast, sd_subdomains, entry_subdomains)
    code, reply = send(relay, cast.acme_smtp, cast.acme_smtp_password, sender)
    assert (code == 250) is taken, reply

    result = run(check_sender_domains, relay, cast.acme_smtp)
    facts = Facts(cast.acme_smtp, timezone.now())
    assert facts.policy.check(sender).allowed is taken
    assert result.status == (OK if taken else PROBLEM)
    if not taken:
        assert sender.partition("@")[2] in text(result)
        assert not sd_subdomains or "does not include subdomains" not in result.fix.text
    if entry_subdomains and not sd_subdomains:
        if not taken:  # the relay's reply names the fix too
            assert "does not include subdomains" in reply.decode()
        senders = check_has_senders(cast.acme_smtp, timezone.now())
        assert senders.status == OK  # example.com itself is usable
        assert ("example.com (not its subdomains: the sending domain example.com does not "
                "include subdomains)") in text(senders)


@pytest.mark.parametrize("sd_subdomains, entry_subdomains, sender, taken",
                         [row for row in TABLE if not row[3]])
def test_following_the_troubleshooters_fixes_gets_the_message_through(
    relay, cast, client, sd_subdomains, entry_subdomains, sender, taken
):
    _setup(cast, sd_subdomains, entry_subdomains)
    login(client, cast.alice)
    pw = cast.acme_smtp_password
    applied = []
    for _ in range(3):
        code, reply = send(relay, cast.acme_smtp, pw, sender)
        result = run(check_sender_domains, relay, cast.acme_smtp)
        if code == 250:
            assert result.status == OK
            break
        assert result.status == PROBLEM
        [action] = [a for a in result.fix.actions if a.primary and a.post]
        response = client.post(action.url, action.post, follow=True)
        assert response.status_code == 200
        said = [str(m) for m in get_messages(response.wsgi_request)]
        assert not any(m.startswith("Could not") for m in said), said
        applied.append(action.label)
        relay_sees_changes(relay)
    else:
        pytest.fail(f"still refused after {applied}: {reply!r}")
    assert applied, "a refused sender must come with a fix"
    if not sd_subdomains:
        assert applied[0] == "Let subdomains of example.com be authorized"
        assert SendingDomain.objects.get(domain="example.com").include_subdomains


def test_a_subdomain_of_a_closed_sending_domain_is_not_offered_as_authorizable(relay, cast):
    _setup(cast, sd_subdomains=False, entry_subdomains=False)
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@www.example.com")
    result = run(check_sender_domains, relay, cast.acme_smtp)
    labels = [a.label for a in result.fix.actions]
    assert labels == ["Let subdomains of example.com be authorized"]
    assert "www.example.com is a subdomain of the sending domain example.com, which does " \
           "not include subdomains" in result.fix.text


def test_a_www_domain_that_is_a_sending_domain_of_its_own_is_offered_alone(relay, cast):
    own(cast.acme.pk, "www.example.org")
    send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@www.example.org")
    result = run(check_sender_domains, relay, cast.acme_smtp)
    assert [a.label for a in result.fix.actions] == ["Authorize www.example.org"]


def test_turning_subdomains_on_for_an_entry_needs_the_sending_domain_to_include_them(cast):
    entry = cast.acme_smtp.authorized_domains.get(domain="acme.test")
    with pytest.raises(InvalidEntry, match='turn on "include subdomains" for the sending domain'):
        authorize_sender(cast.acme_smtp, "domain", "acme.test", include_subdomains=True)
    entry.refresh_from_db()
    assert not entry.include_subdomains


def test_the_users_page_refuses_to_include_subdomains_the_account_does_not_own(client, cast):
    login(client, cast.alice)
    entry = cast.acme_smtp.authorized_domains.get(domain="acme.test")
    url = reverse("accounts:smtpuser_domain_subdomains", args=[cast.acme_smtp.pk, entry.pk])
    response = client.post(url, {"include_subdomains": "1"}, follow=True)
    entry.refresh_from_db()
    assert not entry.include_subdomains
    assert "Subdomains of acme.test cannot be authorized" in response.content.decode()


def test_the_users_page_shows_subdomains_the_relay_refuses(client, cast):
    _setup(cast, sd_subdomains=False, entry_subdomains=True)
    login(client, cast.alice)
    html = client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert "refused: the sending domain example.com does not include subdomains" in html
    SendingDomain.objects.filter(domain="example.com").update(include_subdomains=True)
    html = client.get(cast.acme_smtp.get_absolute_url()).content.decode()
    assert "refused: the sending domain example.com" not in html
    assert "included (any name ending in .example.com)" in html
