"""Django's admin for the relay's tables: read-only, and cheap to list."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from relay.models import ConnectionStat, EventKind, Message, RelayEvent
from tests.conftest import PASSWORD, login
from tests.relay.console.test_messages import make_message


@pytest.fixture
def operator(client, cast):
    login(client, User.objects.create_superuser("op@example.test", "op@example.test", PASSWORD))
    return client


def test_a_superuser_cannot_delete_a_message_in_the_admin(operator, cast):
    message = make_message(cast.acme_smtp)
    response = operator.post(reverse("admin:relay_message_delete", args=[message.pk]),
                             {"post": "yes"})
    assert response.status_code == 403
    assert Message.objects.filter(pk=message.pk).exists()
    changelist = operator.get(reverse("admin:relay_message_changelist")).content.decode()
    assert 'name="action"' not in changelist  # no "delete selected" action either


@pytest.mark.parametrize("model", ["message", "relayevent", "connectionstat"])
def test_the_admin_lists_do_not_query_per_row(operator, cast, model):
    for i in range(20):
        user = cast.acme_smtp if i % 2 else cast.globex_smtp
        make_message(user)
        RelayEvent.objects.create(account=user.account, smtp_user=user, kind=EventKind.AUTH_FAILED,
                                  username=f"u{i}")
        ConnectionStat.objects.create(hour=f"2025-01-01T{i:02d}:00Z", port=587, smtp_user=user)
    url = reverse(f"admin:relay_{model}_changelist")
    operator.get(url)  # session and content types cached
    with CaptureQueriesContext(connection) as queries:
        assert operator.get(url).status_code == 200
    assert len(queries) <= 8, [q["sql"] for q in queries]


def test_the_message_list_in_the_admin_does_not_load_the_raw_bytes(operator, cast):
    make_message(cast.acme_smtp)
    with CaptureQueriesContext(connection) as queries:
        assert operator.get(reverse("admin:relay_message_changelist")).status_code == 200
    selects = [q["sql"] for q in queries if 'FROM "relay_message"' in q["sql"]]
    assert selects and all('"raw"' not in sql for sql in selects)
