"""The whole API, called with requests that schemathesis derives from the API's own
OpenAPI document (valid and invalid ones): no answer is a 5xx, and every answer — its
status, content type, headers and body — is one the document declares.

Management operations are called with an admin key of Acme, sending with a send key of
Acme's SMTP+ user; a few examples per operation keep the run to seconds.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis import checks

from accounts.actions.api_keys import create_api_key
from accounts.models import ApiKeyRole
from relay.models import Suppression
from smtpplus.wsgi import application

# The raw send endpoint takes the message's bytes, as any binary body.
schemathesis.serializer.alias("message/rfc822", "application/octet-stream")
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", application)
SEND = {"/api/v1/messages/raw", "/api/v1/messages"}
CHECKS = [checks.not_a_server_error, checks.status_code_conformance,
          checks.content_type_conformance, checks.response_headers_conformance,
          checks.response_schema_conformance]


@pytest.fixture
def keys(cast, settings) -> dict[str, str]:
    settings.API_RATE_LIMIT = 0
    settings.DEBUG = False
    _, admin = create_api_key(cast.acme, name="schemathesis admin", role=ApiKeyRole.ADMIN)
    _, sender = create_api_key(cast.acme, name="schemathesis sender", smtp_user=cast.acme_smtp)
    return {"admin": admin, "send": sender}


@pytest.fixture(autouse=True)
def _keep_the_test_transaction() -> Iterator[None]:
    # As Django's test client does: the app's end-of-request handler would otherwise
    # close the connection that holds the test's transaction.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.mark.django_db
@schema.parametrize()
@hypothesis_settings(max_examples=4, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture,
                                            HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_every_operation_answers_as_its_document_says(case, keys):
    sending = case.method == "POST" and case.operation.path in {p.removeprefix("/api/v1")
                                                                 for p in SEND}
    key = keys["send"] if sending else keys["admin"]
    case.call_and_validate(headers={"Authorization": f"Bearer {key}"}, checks=CHECKS,
                           environ_overrides={"REMOTE_ADDR": "127.0.0.1"})


# Generated values seldom name an existing entry or make a valid CSV file: these calls
# check the answers of the suppression list and the log's filters when they succeed.
def _succeeding_cases(cast) -> list[tuple[str, str, dict]]:
    entry = Suppression.objects.create(account=cast.acme, address="gone@example.net",
                                       reason="mailbox_unknown", reply="550 5.1.1 No such user")
    csv = "address,reason,reply,note,created,expires\nnew@example.net,manual,,hi,,\n"
    return [
        ("GET", "/api/v1/suppressions", {"query": {"q": "gone", "reason": "mailbox_unknown"}}),
        ("GET", "/api/v1/suppressions/{pk}", {"path_parameters": {"pk": entry.pk}}),
        ("GET", "/api/v1/suppressions/export", {"query": {"reason": "mailbox_unknown"}}),
        ("POST", "/api/v1/suppressions", {"body": {"address": "x@example.net", "expires_days": 3}}),
        ("POST", "/api/v1/suppressions/import", {"body": csv, "media_type": "text/csv"}),
        ("DELETE", "/api/v1/suppressions/{pk}", {"path_parameters": {"pk": entry.pk}}),
        ("GET", "/api/v1/messages", {"query": {"since": "2026-01-01T00:00", "event": "failed",
                                                 "domain": "example.net", "kind": "mail"}}),
    ]


@pytest.mark.django_db
def test_the_suppression_list_and_the_logs_filters_answer_as_documented_when_they_succeed(
        cast, keys):
    for method, path, fields in _succeeding_cases(cast):
        case = schema[path][method].Case(**fields)
        response = case.call_and_validate(headers={"Authorization": f"Bearer {keys['admin']}"},
                                          checks=CHECKS,
                                          environ_overrides={"REMOTE_ADDR": "127.0.0.1"})
        assert 200 <= response.status_code < 300, f"{method} {path}: {response.status_code}"
