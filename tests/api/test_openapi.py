"""The OpenAPI document at /api/v1/openapi.json: valid OpenAPI 3.1, every endpoint in
it, each with its API-key security and its JSON error answers."""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from openapi_spec_validator import validate

pytestmark = pytest.mark.django_db

EXPECTED = {
    "GET /smtp-users", "POST /smtp-users", "GET /smtp-users/{pk}", "PATCH /smtp-users/{pk}",
    "POST /smtp-users/{pk}/enable", "POST /smtp-users/{pk}/disable",
    "POST /smtp-users/{pk}/reset-password", "POST /smtp-users/{pk}/reveal-password",
    "GET /smtp-users/{pk}/senders", "POST /smtp-users/{pk}/senders",
    "DELETE /smtp-users/{pk}/senders/domains/{entry}", "DELETE /smtp-users/{pk}/senders/emails/{entry}",
    "GET /messages", "GET /messages/{pk}", "POST /messages/{pk}/retry", "POST /messages/{pk}/cancel",
    "GET /relay-events",
    "GET /alert-rules", "POST /alert-rules", "GET /alert-rules/{pk}", "PUT /alert-rules/{pk}",
    "DELETE /alert-rules/{pk}",
    "GET /audit-log",
    "GET /sending-domains", "POST /sending-domains", "GET /sending-domains/{pk}",
    "POST /sending-domains/{pk}/check", "DELETE /sending-domains/{pk}",
    "POST /messages", "POST /messages/raw",
    "DELETE /smtp-users/{pk}", "GET /smtp-users/{pk}/can-send-as",
    "POST /alert-rules/{pk}/test", "POST /alert-rules/{pk}/enable",
    "POST /alert-rules/{pk}/disable",
    "GET /suppressions", "POST /suppressions", "GET /suppressions/{pk}",
    "DELETE /suppressions/{pk}", "GET /suppressions/export", "POST /suppressions/import",
}
SEND = {"POST /messages", "POST /messages/raw"}


def api_routes() -> set[str]:
    """Every route Django serves under api/v1/ (ninja's own URL patterns)."""
    found = set()
    for item in get_resolver().url_patterns:
        if isinstance(item, URLResolver) and str(item.pattern) == "api/v1/":
            for sub in item.url_patterns:
                assert isinstance(sub, URLPattern)
                # ninja's own: the document itself, and a 404 that only names the prefix.
                if sub.name in ("openapi-json", "api-root"):
                    continue
                found.add("/api/v1/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", str(sub.pattern)))
    return found


@pytest.fixture
def document(client):
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200 and answer["Content-Type"].startswith("application/json")
    return answer.json()


def test_it_is_a_valid_openapi_3_1_document(document):
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_it_lists_every_endpoint_django_serves(document):
    served = api_routes()
    assert served == set(document["paths"])
    operations = {f"{m.upper()} {p.removeprefix('/api/v1')}" for p, ops in document["paths"].items()
                  for m in ops}
    assert operations == EXPECTED


def test_every_endpoint_needs_a_bearer_key_and_documents_json_errors(document):
    schemes = document["components"]["securitySchemes"]
    assert sorted(f"{name}:{s['scheme']}" for name, s in schemes.items()) == [
        "ApiKeyAuth:bearer", "SendKeyAuth:bearer", "SmtpUserBasicAuth:basic"]
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            operation = f"{method.upper()} {path.removeprefix('/api/v1')}"
            assert op.get("security"), f"{method} {path} has no security"
            sending = operation in SEND
            assert op["security"] == ([{"SendKeyAuth": []}, {"SmtpUserBasicAuth": []}]
                                      if sending else [{"ApiKeyAuth": []}]), operation
            for status in ("401", "403", "422", "429") + (("413", "503") if sending else ("404",)):
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                error = "/SendErrorOut" if sending else "/ErrorOut"
                assert schema["$ref"].endswith(error), f"{operation} {status}"
