"""Viewers change nothing: every console URL, POSTed by a viewer with form data that would
change something for an owner, leaves every row of the database as it was.

Like tests/test_tenant_isolation.py, the test walks every console route, so a view added
later is covered without touching this file.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

from tests.conftest import PASSWORD, login
from tests.test_tenant_isolation import PROJECT_APPS, console_routes, populate

ACME_PK = 7_300_001

# Everything a console form takes; each view reads the fields it knows.
FORM_DATA: dict[str, Any] = {
    "active": "1", "enabled": "1", "include_subdomains": "1",
    "name": "Changed by a viewer", "note": "viewer note", "priority": "1", "hourly_limit": "5",
    "domains": "viewer-was-here.test", "emails": "viewer@viewer-was-here.test",
    "kind": "domain", "value": "viewer-was-here.test",
    "role": "owner", "email": "friend@viewer-was-here.test",
    "action": "cancel", "recipient": str(ACME_PK),
    "events": ["delivery_failed"], "delay_minutes": "60", "login_threshold": "10",
    "login_window_minutes": "10", "all_users": "1", "frequency": "as_needed",
    "email_recipients": "viewer@viewer-was-here.test", "webhook_url": "",
    # No "port": the owner's walk must not send a test message to whatever listens there.
    "sender": "shop@acme.test", "account": "acme", "password": PASSWORD,
}


def snapshot() -> dict[str, list[dict[str, Any]]]:
    models = [m for label in PROJECT_APPS for m in apps.get_app_config(label).get_models()]
    models.append(get_user_model())
    return {m._meta.label: list(m._default_manager.order_by("pk").values()) for m in models}


def post_everywhere(client: Client) -> dict[str, int]:
    routes, _ = console_routes()
    answers = {}
    for route in routes:
        if not route.only_int_kwargs:
            continue
        url = route.url(dict.fromkeys(route.int_kwargs, ACME_PK))
        answers[f"{route.name} {url}"] = client.post(url, FORM_DATA).status_code
    return answers


@pytest.fixture
def acme_rows(cast):
    populate(cast.acme, cast.alice, ACME_PK, "acme", "198.51.100.20")
    return cast


def test_a_viewer_posting_to_every_console_url_changes_nothing(client, acme_rows):
    login(client, acme_rows.victor)
    before = snapshot()
    answers = post_everywhere(client)
    after = snapshot()
    changed = [label for label in before if before[label] != after[label]]
    assert not changed, f"a viewer changed {changed}; answers: {answers}"
    assert mail.outbox == []
    # The state-changing views say why (403), not a page that looks like it worked.
    assert answers[f"accounts:smtpuser_delete /users/{ACME_PK}/delete/"] == 403
    assert answers[f"relay:message_cancel /messages/{ACME_PK}/cancel/"] == 403
    assert answers["accounts:member_invite /members/invite/"] == 403


def test_the_same_posts_by_the_owner_do_change_things(client, acme_rows):
    """The walk above is meaningful: its form data changes things when the role allows."""
    login(client, acme_rows.alice)
    before = snapshot()
    post_everywhere(client)
    after = snapshot()
    changed = {label for label in before if before[label] != after[label]}
    assert {"accounts.SmtpUser", "accounts.AuthorizedDomain", "relay.Recipient",
            "alerts.AlertRule", "accounts.Invitation"} <= changed
