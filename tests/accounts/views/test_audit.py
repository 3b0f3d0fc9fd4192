"""The audit log page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.urls import reverse

from accounts import audit
from accounts.models import AuditEvent
from tests.conftest import login

AUDIT = reverse("accounts:audit")


def event(account, action: str, *, actor: str = "alice@acme.test", target: str = "", when=None, **details):
    e = audit.record(
        action, account=account, actor=audit.Actor.system(actor), target_label=target, details=details
    )
    if when is not None:
        AuditEvent.objects.filter(pk=e.pk).update(created=when)
    return e


def shown_targets(response) -> list[str]:
    return [e.target_label for e, _ in response.context["rows"]]


def test_it_lists_the_current_accounts_events_newest_first(alice_client, cast):
    AuditEvent.objects.all().delete()
    base = datetime(2030, 5, 1, 12, tzinfo=UTC)
    event(cast.acme, "smtpuser.create", target="older", when=base)
    event(cast.acme, "smtpuser.reveal", target="newer", when=base + timedelta(hours=1))
    event(cast.globex, "smtpuser.reveal", target="globex-secret-user", actor="charlie@globex.test")
    response = alice_client.get(AUDIT)
    assert shown_targets(response) == ["newer", "older"]
    page = response.content.decode()
    assert "globex-secret-user" not in page and "charlie@globex.test" not in page


def test_it_shows_actor_action_target_details_ip_and_time(alice_client, cast):
    AuditEvent.objects.all().delete()
    alice_client.post(reverse("accounts:member_invite"), {"email": "dana@example.test", "role": "viewer"})
    row = alice_client.get(AUDIT).content.decode()
    for text in ("alice@acme.test", "member.invite", "dana@example.test", "<dt>role</dt><dd>viewer</dd>", "127.0.0.1"):
        assert text in row
    assert "<time datetime=" in row


def test_details_and_labels_are_escaped(alice_client, cast):
    event(cast.acme, "smtpuser.edit", target="<img src=x onerror=alert(1)>",
          note="<script>alert('x')</script>", changed={"name": ["<b>", "ok"]})
    page = alice_client.get(AUDIT).content.decode()
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<dt>changed</dt><dd>{&quot;name&quot;: [&quot;&lt;b&gt;&quot;, &quot;ok&quot;]}</dd>" in page


def test_it_filters_by_action_actor_target_and_dates(alice_client, cast):
    AuditEvent.objects.all().delete()
    day = datetime(2030, 5, 10, 12, tzinfo=UTC)
    event(cast.acme, "smtpuser.create", actor="alice@acme.test", target="shop", when=day)
    event(cast.acme, "smtpuser.reveal", actor="bob@acme.test", target="shop", when=day + timedelta(days=1))
    event(cast.acme, "smtpuser.reveal", actor="alice@acme.test", target="crm", when=day + timedelta(days=2))
    event(cast.acme, "command", actor="command line: manage.py smtpuser create", target="cli", when=day)

    def targets(**params) -> list[str]:
        return shown_targets(alice_client.get(AUDIT, params))

    assert targets(action="smtpuser.reveal") == ["crm", "shop"]
    assert targets(actor="BOB") == ["shop"]
    assert targets(actor="command line") == ["cli"]
    assert targets(target="cr") == ["crm"]
    assert targets(date_from="2030-05-11") == ["crm", "shop"]
    assert targets(date_to="2030-05-10") == ["cli", "shop"]  # same time: newest id first
    assert targets(date_from="2030-05-11", date_to="2030-05-11") == ["shop"]
    assert targets(action="smtpuser.reveal", actor="alice") == ["crm"]
    assert targets(target="nothing-matches") == []


def test_the_action_filter_offers_only_this_accounts_actions(alice_client, cast):
    event(cast.globex, "globex.only.action")
    event(cast.acme, "acme.action")
    choices = [value for value, _ in alice_client.get(AUDIT).context["form"].fields["action"].choices]
    assert "acme.action" in choices and "globex.only.action" not in choices
    # An action of another account is not a valid filter and filters nothing out.
    response = alice_client.get(AUDIT, {"action": "globex.only.action"})
    assert response.status_code == 200
    assert "acme.action" in [e.action for e, _ in response.context["rows"]]


def test_a_mistyped_date_is_reported_and_the_other_filters_still_apply(alice_client, cast):
    event(cast.acme, "smtpuser.create", target="shop")
    event(cast.acme, "smtpuser.create", target="crm")
    response = alice_client.get(AUDIT, {"date_from": "yesterday", "target": "crm"})
    assert "Enter a valid date" in response.content.decode()
    assert shown_targets(response) == ["crm"]


def test_it_shows_fifty_events_per_page_and_keeps_the_filters(alice_client, cast):
    AuditEvent.objects.all().delete()
    AuditEvent.objects.bulk_create(
        AuditEvent(account=cast.acme, actor_label="alice@acme.test", action="bulk", target_label=f"t{i:03}")
        for i in range(120)
    )
    first = alice_client.get(AUDIT, {"action": "bulk"})
    assert len(first.context["rows"]) == 50
    page = first.content.decode()
    assert "Page 1 of 3" in page and "120 events" in page
    assert "?action=bulk&amp;page=2" in page
    third = alice_client.get(AUDIT, {"action": "bulk", "page": 3})
    assert len(third.context["rows"]) == 20
    every = {t for p in (1, 2, 3) for t in shown_targets(alice_client.get(AUDIT, {"page": p}))}
    assert len(every) == 120


def test_viewers_may_read_the_audit_log(client, cast):
    event(cast.acme, "smtpuser.create", target="visible-to-viewers")
    login(client, cast.victor)
    response = client.get(AUDIT)
    assert response.status_code == 200 and "visible-to-viewers" in response.content.decode()


def test_anonymous_visitors_are_sent_to_log_in(client, cast):
    response = client.get(AUDIT)
    assert response.status_code == 302 and response["Location"].startswith("/login/")
