"""DELETE /api/v1/smtp-users/{id} (admin keys, audited, send keys go with the user) and
GET /api/v1/smtp-users/{id}/can-send-as (the relay's own sender decision)."""

from __future__ import annotations

import pytest

from accounts.actions.api_keys import create_api_key
from accounts.models import ApiKey, AuditEvent, SmtpUser
from relay.smtp.login import log_in

pytestmark = pytest.mark.django_db


def test_an_admin_key_deletes_a_user_its_credentials_and_send_keys_stop_working(acme_api, cast):
    send_key, _ = create_api_key(cast.acme, name="shop", smtp_user=cast.acme_smtp)
    answer = acme_api.delete(f"/smtp-users/{cast.acme_smtp.pk}")
    assert answer.status_code == 204
    assert not SmtpUser.objects.filter(pk=cast.acme_smtp.pk).exists()
    assert not ApiKey.objects.filter(pk=send_key.pk).exists()
    assert not log_in(cast.acme_smtp.username, cast.acme_smtp_password, None).result.ok
    event = AuditEvent.objects.get(action="smtpuser.delete")
    assert event.actor_label == "API key: acme admin key"
    assert event.details["domains"] == ["acme.test"]


def test_a_read_only_key_and_another_account_cannot_delete(acme_reader, globex_api, cast):
    assert acme_reader.delete(f"/smtp-users/{cast.acme_smtp.pk}").status_code == 403
    assert globex_api.delete(f"/smtp-users/{cast.acme_smtp.pk}").status_code == 404
    assert SmtpUser.objects.filter(pk=cast.acme_smtp.pk).exists()


@pytest.mark.parametrize("address, allowed", [
    ("shop@acme.test", True), ("SHOP@ACME.TEST", True), ("x@sub.acme.test", False),
    ("x@acme.test.evil.net", False), ("not an address", False),
])
def test_can_send_as_gives_the_relays_decision_and_its_reason(acme_reader, cast, address, allowed):
    answer = acme_reader.get(f"/smtp-users/{cast.acme_smtp.pk}/can-send-as", address=address)
    assert answer.status_code == 200
    data = answer.json()
    assert (data["address"], data["allowed"]) == (address, allowed)
    assert data["reason"]


def test_can_send_as_of_another_accounts_user_is_a_404(globex_api, cast):
    answer = globex_api.get(f"/smtp-users/{cast.acme_smtp.pk}/can-send-as", address="a@acme.test")
    assert answer.status_code == 404
