"""The sender checks: rejected domains and addresses, and a user without senders, produced over SMTP."""

from __future__ import annotations

from accounts.actions.smtp_users import create_smtp_user
from relay.troubleshooter.base import OK, PROBLEM
from relay.troubleshooter.senders import (
    check_has_senders,
    check_sender_domains,
    check_sender_emails,
)
from tests.relay.troubleshooter.helpers import (
    run,
    send,
    text,
)
from tests.senders import own


# --- senders -----------------------------------------------------------------------------
def test_rejected_sender_domains_are_grouped_with_counts(relay, cast):
    pw = cast.acme_smtp_password
    own(cast.acme.pk, "example.org")  # the account's own domains: offered "Authorize"
    own(cast.acme.pk, "other.test")
    for sender in ("info@example.org", "sales@example.org", "info@example.org"):
        assert send(relay, cast.acme_smtp, pw, sender)[0] == 550
    # Envelope authorized, From: header not: rejected at the end of DATA.
    assert send(relay, cast.acme_smtp, pw, "shop@acme.test", header_from="boss@other.test")[0] == 550
    result = run(check_sender_domains, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert result.evidence[0].startswith("example.org: 3 rejected, last at ")
    assert "info@example.org, sales@example.org" in result.evidence[0]
    assert result.evidence[1].startswith("other.test: 1 rejected")
    labels = [a.label for a in result.fix.actions]
    assert labels == ["Authorize example.org", "Authorize other.test"]
    assert result.fix.actions[0].post == {"kind": "domain", "value": "example.org"}


def test_a_www_domain_offers_the_parent_domain_first(relay, cast):
    own(cast.acme.pk, "example.com", include_subdomains=True)
    assert send(relay, cast.acme_smtp, cast.acme_smtp_password, "info@www.example.com")[0] == 550
    result = run(check_sender_domains, relay, cast.acme_smtp)
    first, second = result.fix.actions
    assert first.label == "Authorize example.com and its subdomains"
    assert first.post == {"kind": "domain", "value": "example.com", "include_subdomains": "1"}
    assert second.label == "Authorize only www.example.com" and not second.primary


def test_rejected_sender_addresses_are_listed_one_by_one(relay, cast):
    pw = cast.acme_smtp_password
    send(relay, cast.acme_smtp, pw, "info@example.org")
    send(relay, cast.acme_smtp, pw, "shop@acme.test", header_from="info@example.org")
    send(relay, cast.acme_smtp, pw, "jane@example.net")
    result = run(check_sender_emails, relay, cast.acme_smtp)
    assert result.status == PROBLEM
    assert result.evidence[0].startswith(
        "info@example.org: 2 rejected (envelope sender ×1, From header ×1)")
    assert [a.post["value"] for a in result.fix.actions] == ["info@example.org", "jane@example.net"]
    assert all(a.post["kind"] == "email" for a in result.fix.actions)


def test_a_user_without_senders_is_a_problem(relay, cast):
    user, pw = create_smtp_user(cast.acme, name="New app")
    assert send(relay, user, pw, "info@acme.test")[0] == 550
    result = run(check_has_senders, relay, user)
    assert result.status == PROBLEM
    assert "every message is rejected" in text(result)
    assert run(check_has_senders, relay, cast.acme_smtp).status == OK
