"""API key lifecycle: only a digest is stored; expiry, revocation and allowed networks
turn a key away with a 401; each use is recorded; console and CLI create and revoke."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.actions.api_keys import create_api_key, revoke_api_key
from accounts.api.keys import digest_key
from accounts.models import ApiKey, ApiKeyRole, AuditEvent
from tests.api.conftest import ApiClient, key_for

pytestmark = pytest.mark.django_db


def test_only_a_keyed_digest_of_the_key_is_stored(cast):
    key, raw = create_api_key(cast.acme, name="Deploy")
    assert raw.startswith(f"smtpk_{key.prefix}_")
    stored = json.dumps(list(ApiKey.objects.filter(pk=key.pk).values()), default=str)
    assert raw not in stored and raw.split("_", 2)[2] not in stored  # the secret may hold "_"
    assert key.digest == digest_key(raw)
    assert key.digest != __import__("hashlib").sha256(raw.encode()).hexdigest()


def test_a_valid_key_is_accepted_and_its_last_use_recorded(cast):
    raw = key_for(cast.acme, name="Deploy")
    answer = ApiClient(raw, remote_addr="192.0.2.10").get("/smtp-users")
    assert answer.status_code == 200
    key = ApiKey.objects.get(name="Deploy")
    assert key.last_used_ip == "192.0.2.10"
    assert timezone.now() - key.last_used_at < timedelta(minutes=1)


@pytest.mark.parametrize("header", [None, "Bearer nonsense", "Bearer smtpk_abcdefgh_wrong"])
def test_it_refuses_a_missing_or_unknown_key_with_a_json_401(cast, header):
    client = ApiClient(None)
    answer = client.client.get("/api/v1/smtp-users", headers={"Authorization": header} if header else {})
    assert answer.status_code == 401
    assert set(answer.json()) == {"code", "message"}
    assert answer.json()["code"] in {"missing_key", "invalid_key"}


def test_it_refuses_a_key_with_the_right_prefix_and_a_wrong_secret(cast):
    raw = key_for(cast.acme)
    forged = raw[: raw.rindex("_") + 1] + "x" * 32
    assert ApiClient(forged).get("/smtp-users").json()["code"] == "invalid_key"


def test_it_refuses_an_expired_key(cast):
    raw = key_for(cast.acme, expires_at=timezone.now() - timedelta(seconds=1))
    answer = ApiClient(raw).get("/smtp-users")
    assert answer.status_code == 401 and answer.json()["code"] == "expired_key"


def test_a_key_with_a_future_expiry_works(cast):
    raw = key_for(cast.acme, expires_at=timezone.now() + timedelta(days=1))
    assert ApiClient(raw).get("/smtp-users").status_code == 200


def test_it_refuses_a_revoked_key_at_once(cast):
    key, raw = create_api_key(cast.acme, name="Old")
    assert ApiClient(raw).get("/smtp-users").status_code == 200
    revoke_api_key(key)
    answer = ApiClient(raw).get("/smtp-users")
    assert answer.status_code == 401 and answer.json()["code"] == "revoked_key"


def test_it_refuses_a_key_used_outside_its_allowed_networks(cast):
    raw = key_for(cast.acme, allowed_networks=["10.0.0.0/8", "2001:db8::/32"])
    assert ApiClient(raw, remote_addr="10.1.2.3").get("/smtp-users").status_code == 200
    assert ApiClient(raw, remote_addr="2001:db8::5").get("/smtp-users").status_code == 200
    answer = ApiClient(raw, remote_addr="192.0.2.1").get("/smtp-users")
    assert answer.status_code == 401 and answer.json()["code"] == "network_not_allowed"


def test_creating_and_revoking_are_audited(cast):
    key, _ = create_api_key(cast.acme, name="Deploy", role=ApiKeyRole.ADMIN)
    revoke_api_key(key)
    actions = list(AuditEvent.objects.filter(account=cast.acme, target_type="apikey")
                   .values_list("action", flat=True))
    assert sorted(actions) == ["apikey.create", "apikey.revoke"]
