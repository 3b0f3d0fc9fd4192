"""An authorized address at a domain the account does not own is confirmed by a link
mailed to it: GET shows a Confirm button (link scanners confirm nothing), POST
confirms; links expire, a resend replaces them; everything is audited."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from accounts.actions.senders import add_senders
from accounts.models import AuditEvent, AuthorizedEmail, SmtpUser
from relay.smtp.login import log_in
from tests.conftest import login

pytestmark = pytest.mark.django_db


@pytest.fixture
def added(cast, settings, django_capture_on_commit_callbacks):
    settings.SMTPPLUS_CONSOLE_URL = "https://console.example"
    settings.SMTPPLUS_ADDRESS_CONFIRM_HOURS = 48
    with django_capture_on_commit_callbacks(execute=True):
        result = add_senders(cast.acme_smtp, emails_text="Me@Gmail.test")
    assert result.pending_emails == ["Me@gmail.test"]
    return AuthorizedEmail.objects.get(email="Me@gmail.test")


def link_in(message) -> str:
    return re.search(r"https://console\.example(/confirm-address/[^/\s]+/)", message.body).group(1)


def may_send(cast, address: str) -> bool:
    policy = log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).policy
    return policy is not None and policy.check(address).allowed


def test_adding_the_address_mails_it_a_link_and_it_cannot_send_yet(added, cast):
    [sent] = mail.outbox
    assert sent.to == ["Me@gmail.test"]
    assert sent.subject == "Confirm that Acme may send as Me@gmail.test"
    assert "expires in 48 hours" in sent.body
    assert added.confirm_token_digest and added.confirm_sent_at is not None
    assert added.confirm_expires - added.confirm_sent_at == timedelta(hours=48)
    assert link_in(sent).split("/")[2] not in added.confirm_token_digest  # only a digest stored
    assert not may_send(cast, "me@gmail.test")
    assert AuditEvent.objects.filter(action="smtpuser.address_confirmation_sent").count() == 1


def test_an_address_at_a_domain_the_account_owns_gets_no_mail(cast, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        result = add_senders(cast.acme_smtp, emails_text="billing@acme.test")
    assert result.pending_emails == [] and mail.outbox == []
    assert may_send(cast, "billing@acme.test")


def test_opening_the_link_confirms_nothing_and_the_button_confirms(added, cast, client):
    path = link_in(mail.outbox[0])
    page = client.get(path)  # no login needed; a link scanner does just this
    assert page.status_code == 200
    assert "Confirm Me@gmail.test</button>" in page.content.decode()
    assert AuthorizedEmail.objects.get(pk=added.pk).confirmed_at is None
    before = SmtpUser.objects.get(pk=cast.acme_smtp.pk).version
    done = client.post(path)
    assert done.status_code == 200 and "is confirmed" in done.content.decode()
    entry = AuthorizedEmail.objects.get(pk=added.pk)
    assert entry.confirmed_at is not None and entry.confirmed_how == "link"
    assert SmtpUser.objects.get(pk=cast.acme_smtp.pk).version > before
    assert may_send(cast, "me@gmail.test")
    event = AuditEvent.objects.get(action="smtpuser.address_confirmed")
    assert event.details == {"email": "Me@gmail.test"} and event.account == cast.acme
    # The link works once.
    assert client.post(path).status_code == 404


def test_an_expired_link_confirms_nothing(added, cast, client):
    AuthorizedEmail.objects.filter(pk=added.pk).update(
        confirm_expires=timezone.now() - timedelta(seconds=1))
    path = link_in(mail.outbox[0])
    page = client.get(path)
    assert page.status_code == 410 and "has expired" in page.content.decode()
    assert client.post(path).status_code == 410
    assert AuthorizedEmail.objects.get(pk=added.pk).confirmed_at is None


def test_a_resend_mails_a_new_link_and_the_old_one_stops_working(added, cast, client):
    old = link_in(mail.outbox[0])
    admin = login(client, cast.bob)
    url = reverse("accounts:smtpuser_email_resend", args=[cast.acme_smtp.pk, added.pk])
    page = admin.get(reverse("accounts:smtpuser_detail", args=[cast.acme_smtp.pk]))
    html = page.content.decode()
    assert ">pending confirmation</span>" in html and f'action="{url}"' in html
    response = admin.post(url, follow=True)
    assert "A new confirmation link was mailed to Me@gmail.test" in response.content.decode()
    assert len(mail.outbox) == 2
    new = link_in(mail.outbox[1])
    assert new != old
    client.logout()
    assert client.post(old).status_code == 404
    assert client.post(new).status_code == 200
    assert AuthorizedEmail.objects.get(pk=added.pk).confirmed_at is not None


def test_only_admins_of_the_account_resend(added, cast, client):
    url = reverse("accounts:smtpuser_email_resend", args=[cast.acme_smtp.pk, added.pk])
    assert login(client, cast.victor).post(url).status_code == 403
    assert login(client, cast.charlie).post(url).status_code == 404
    assert len(mail.outbox) == 1


def test_an_unknown_link_is_refused(client, db):
    page = client.get("/confirm-address/not-a-token/")
    assert page.status_code == 404 and "is not valid" in page.content.decode()


def test_the_cli_says_which_addresses_wait_for_their_confirmation(
        cast, django_capture_on_commit_callbacks):
    out = StringIO()
    with django_capture_on_commit_callbacks(execute=True):
        call_command("smtpuser", "authorize", cast.acme_smtp.username,
                     "--emails", "ops@partner.test billing@acme.test", stdout=out)
    data = json.loads(out.getvalue())
    assert data["pending_confirmation"] == ["ops@partner.test"]
    assert [m.to for m in mail.outbox] == [["ops@partner.test"]]
