"""The `Actor` a state change is recorded under: built from a console request, the command
line or SMTP+ itself, and the only thing domain actions know about who acts."""

from __future__ import annotations

import ast
from pathlib import Path

from django.contrib.auth.models import AnonymousUser
from django.test import RequestFactory

from accounts import audit
from accounts.actions import smtp_users
from accounts.audit import Actor
from accounts.models import AuditEvent

ROOT = Path(__file__).resolve().parents[2]

# Every module that holds audited state changes.
DOMAIN_ACTIONS = [
    "accounts/actions/smtp_users.py",
    "accounts/actions/senders.py",
    "accounts/actions/members.py",
    "accounts/actions/invitations.py",
    "alerts/rules.py",
    "alerts/sample.py",
    "relay/delivery/actions.py",
    "relay/troubleshooter/testmessage.py",
    "relay/troubleshooter/fixes.py",
]


def test_from_a_request_it_is_the_signed_in_user_from_their_address(cast, settings):
    settings.BEHIND_TLS_PROXY = False
    request = RequestFactory().post("/", REMOTE_ADDR="198.51.100.7")
    request.user = cast.alice
    request.account = cast.acme
    actor = Actor.from_request(request)
    assert actor == Actor(label="alice@acme.test", user=cast.alice, ip="198.51.100.7",
                          account=cast.acme)


def test_from_an_anonymous_request_it_names_no_user():
    request = RequestFactory().post("/", REMOTE_ADDR="203.0.113.9")
    request.user = AnonymousUser()
    actor = Actor.from_request(request)
    assert (actor.user, actor.ip, actor.account) == (None, "203.0.113.9", None)
    assert actor.label == audit.ANONYMOUS_LABEL


def test_the_command_line_is_named_by_its_command():
    actor = Actor.command_line(["manage.py", "smtpuser", "create", "--account", "acme"])
    assert actor == Actor(label="command line: manage.py smtpuser create")


def test_an_action_records_the_actor_it_is_given(cast):
    request = RequestFactory().post("/", REMOTE_ADDR="192.0.2.44")
    request.user = cast.bob
    user, _ = smtp_users.create_smtp_user(cast.acme, name="app",
                                          actor=Actor.from_request(request))
    row = AuditEvent.objects.get(action="smtpuser.create", target_id=str(user.pk))
    assert (row.actor, row.actor_label, row.ip) == (cast.bob, "bob@acme.test", "192.0.2.44")


def test_an_action_without_an_actor_is_recorded_as_the_command_line(cast):
    user, _ = smtp_users.create_smtp_user(cast.acme, name="cron")
    row = AuditEvent.objects.get(action="smtpuser.create", target_id=str(user.pk))
    assert row.actor is None and row.ip is None
    assert row.actor_label.startswith("command line: manage.py")


def test_domain_actions_never_see_an_http_request():
    for name in DOMAIN_ACTIONS:
        tree = ast.parse((ROOT / name).read_text())
        imported = {
            node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
        } | {a.name for node in ast.walk(tree) if isinstance(node, ast.Import) for a in node.names}
        assert "django.http" not in imported, name
        params = {
            a.arg for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
            for a in [*node.args.args, *node.args.kwonlyargs]
        }
        assert "request" not in params, name
