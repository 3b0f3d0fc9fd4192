"""Walks every operation of the OpenAPI document, so a new endpoint cannot forget the
rules: without a key 401; charlie's key on an Acme object 404 (nothing changed); a
read-only key 403 on every write."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, SendingDomain
from relay.models import RecipientStatus, Suppression
from tests.alerts.conftest import make_rule
from tests.api.conftest import ApiClient
from tests.relay.console.test_messages import make_message
from tests.senders import authorize_email

pytestmark = pytest.mark.django_db

# Sending (tests/api/test_send_api.py) takes send keys only: any management key is a 403.
SEND = {"POST /messages", "POST /messages/raw"}
QUERIES = {"GET /smtp-users/{pk}/can-send-as": {"address": "shop@acme.test"}}

BODIES = {
    "POST /smtp-users/{pk}/senders": {"domains": ["evil.test"]},
    "PATCH /smtp-users/{pk}": {"name": "pwned"},
    "PUT /alert-rules/{pk}": {"name": "pwned", "events": ["delivery_failed"],
                              "email_recipients": ["x@evil.test"]},
    "POST /alert-rules": {"name": "x", "events": ["delivery_failed"],
                          "email_recipients": ["x@evil.test"]},
    "POST /smtp-users": {"name": "x"},
    "POST /sending-domains": {"domain": "evil.test"},
    "POST /suppressions": {"address": "victim@example.net"},
}


def operations(client) -> list[tuple[str, str]]:
    document = client.get("/api/v1/openapi.json").json()
    return [(method, path.removeprefix("/api/v1")) for path, ops in document["paths"].items()
            for method in ops]


def acme_ids(cast) -> dict[str, int]:
    message = make_message(cast.acme_smtp, recipients=[("a@example.net", RecipientStatus.QUEUED)])
    rule = make_rule(cast.acme)
    domain = cast.acme_smtp.authorized_domains.get()
    email = authorize_email(cast.acme_smtp, "x@acme.test")
    suppressed = Suppression.objects.create(account=cast.acme, address="gone@example.net",
                                            reason="manual")
    return {"smtp-users": cast.acme_smtp.pk, "messages": message.pk, "alert-rules": rule.pk,
            "domains": domain.pk, "emails": email.pk,
            "sending-domains": SendingDomain.objects.get(account=cast.acme).pk,
            "suppressions": suppressed.pk}


def fill(path: str, ids: dict[str, int]) -> str:
    parts = path.split("/")
    return "/".join(str(ids[parts[i - 1]]) if p.startswith("{") else p for i, p in enumerate(parts))


def test_every_endpoint_refuses_a_call_without_a_key(client, cast):
    ids = acme_ids(cast)
    for method, path in operations(client):
        answer = ApiClient(None).call(method, fill(path, ids), BODIES.get(f"{method.upper()} {path}"))
        assert answer.status_code == 401, f"{method} {path}"
        assert answer.json()["code"] == "missing_key"


def test_charlies_key_gets_404_for_every_acme_object(client, cast, globex_api):
    ids = acme_ids(cast)
    before = AuditEvent.objects.filter(account=cast.acme).count()
    checked = 0
    for method, path in operations(client):
        if "{" not in path:
            continue
        answer = globex_api.call(method, fill(path, ids), BODIES.get(f"{method.upper()} {path}"),
                                 **QUERIES.get(f"{method.upper()} {path}", {}))
        assert answer.status_code == 404, f"{method} {path}: {answer.status_code}"
        assert answer.json()["code"] == "not_found"
        checked += 1
    assert checked >= 15
    assert AuditEvent.objects.filter(account=cast.acme).count() == before
    assert cast.acme_smtp.authorized_domains.filter(domain="acme.test").exists()
    assert Suppression.objects.filter(account=cast.acme, address="gone@example.net").exists()


def test_a_read_only_key_gets_403_on_every_write(client, cast, acme_reader):
    ids = acme_ids(cast)
    before = AuditEvent.objects.filter(account=cast.acme).count()
    writes = [(m, p) for m, p in operations(client) if m in {"post", "put", "patch", "delete"}]
    for method, path in writes:
        answer = acme_reader.call(method, fill(path, ids), BODIES.get(f"{method.upper()} {path}"))
        assert answer.status_code == 403, f"{method} {path}: {answer.status_code}"
        expected = "not_a_send_key" if f"{method.upper()} {path}" in SEND else "read_only_key"
        assert answer.json()["code"] == expected, f"{method} {path}"
    assert len(writes) >= 14
    assert AuditEvent.objects.filter(account=cast.acme).count() == before


def test_a_read_only_key_reads_every_listing(client, cast, acme_reader):
    ids = acme_ids(cast)
    for method, path in operations(client):
        if method == "get":
            answer = acme_reader.get(fill(path, ids), **QUERIES.get(f"GET {path}", {}))
            assert answer.status_code == 200, f"GET {path}: {answer.status_code}"
