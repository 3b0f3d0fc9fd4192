"""The suppression list: which failures add an address, and `manage.py suppression`."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from accounts.audit import Actor
from accounts.models import AuditEvent
from relay import suppression_csv, suppressions
from relay.models import Suppression

# (code, enhanced, text, reason) → the suppression reason, or None (never suppressed).
REPLIES = [
    (550, "5.1.1", "No such user", "rejected", "mailbox_unknown"),
    (550, "5.1.1", "<a@b>: Recipient address rejected: User unknown", "rejected", "mailbox_unknown"),
    (550, "5.1.10", "Recipient address has null MX", "rejected", "domain_unknown"),
    (550, "5.2.1", "Mailbox disabled", "rejected", "mailbox_disabled"),
    (550, "5.1.2", "Host not found", "rejected", "domain_unknown"),
    (None, "5.1.10", "Domain accepts no mail (null MX)", "null_mx", "domain_unknown"),
    (None, "5.1.2", "Domain does not exist", "no_such_domain", "domain_unknown"),
    (550, "", "User unknown", "rejected", "mailbox_unknown"),
    # Policy and reputation say nothing about the address.
    (550, "5.7.1", "Service unavailable; client host blocked using Spamhaus", "rejected", None),
    (550, "5.7.1", "Message rejected due to low reputation", "rejected", None),
    (554, "5.7.0", "Blocked", "rejected", None),
    (550, "", "Mailbox unavailable: your IP is blocked", "rejected", None),
    (550, "", "User unknown; policy rejection", "rejected", None),
    (552, "5.2.2", "Mailbox full", "rejected", None),
    (552, "5.3.4", "Message too big", "rejected", None),
    (554, "5.6.0", "Content rejected", "rejected", None),
    # Temporary failures never suppress, whatever they say.
    (450, "4.1.1", "User unknown (try later)", "temporary", None),
    (None, "4.4.7", "Expired", "expired", None),
    (None, "4.4.1", "Could not connect", "connect_failed", None),
]


@pytest.mark.parametrize(("code", "enhanced", "text", "reason", "expected"), REPLIES)
def test_only_mailbox_level_failures_suppress(code, enhanced, text, reason, expected):
    assert suppressions.mailbox_level(code, enhanced, text, reason) == expected


def test_addresses_are_compared_in_lower_case_with_the_domains_a_label():
    assert suppressions.normalise("Bob@Bücher.Example") == "bob@xn--bcher-kva.example"
    assert suppressions.normalise("not an address") is None


def run(*args: str) -> object:
    out = StringIO()
    call_command("suppression", *args, stdout=out)
    text = out.getvalue()
    return text if args[0] == "export" else json.loads(text)


@pytest.mark.django_db
def test_the_command_adds_lists_and_removes_with_json_and_audits(cast):
    added = run("add", "--account", cast.acme.slug, "Gone@Example.net", "--note", "left")
    assert added[0]["address"] == "gone@example.net" and added[0]["reason"] == "manual"
    listed = run("list", "--account", cast.acme.slug)
    assert [e["address"] for e in listed] == ["gone@example.net"]
    assert run("list", "--account", cast.globex.slug) == []
    assert run("list", "--account", cast.acme.slug, "--reason", "mailbox_unknown") == []
    removed = run("remove", "--account", cast.acme.slug, "gone@example.net", "x@example.net")
    assert removed == {"removed": ["gone@example.net"], "not_listed": ["x@example.net"]}
    assert not Suppression.objects.exists()
    actions = list(AuditEvent.objects.filter(account=cast.acme).values_list("action", flat=True))
    assert "suppression.added" in actions and "suppression.removed" in actions


@pytest.mark.django_db
def test_the_command_refuses_what_is_not_an_address_naming_it(cast):
    with pytest.raises(CommandError, match="'nope'"):
        run("add", "--account", cast.acme.slug, "ok@example.net", "nope")
    assert not Suppression.objects.exists()


@pytest.mark.django_db
def test_an_export_imports_again_and_a_bad_line_refuses_the_whole_file(cast, tmp_path):
    run("add", "--account", cast.acme.slug, "a@example.net", "b@example.net")
    exported = run("export", "--account", cast.acme.slug)
    assert str(exported).splitlines()[0] == ",".join(suppression_csv.CSV_FIELDS)
    path = tmp_path / "list.csv"
    path.write_text(str(exported))
    result = run("import", "--account", cast.globex.slug, str(path))
    assert sorted(result["added"]) == ["a@example.net", "b@example.net"]

    path.write_text("c@example.net\nnot-an-address\n")
    with pytest.raises(CommandError, match="row 2: 'not-an-address'"):
        run("import", "--account", cast.globex.slug, str(path))
    assert not Suppression.objects.filter(address="c@example.net").exists()


@pytest.mark.django_db
def test_an_export_cannot_run_as_a_spreadsheet_formula_and_still_imports(cast):
    run("add", "--account", cast.acme.slug, "=cmd@example.net", "--note", "+1 boss")
    exported = str(run("export", "--account", cast.acme.slug))
    assert "'=cmd@example.net" in exported and "'+1 boss" in exported
    result = suppression_csv.import_csv(cast.globex, exported, Actor.command_line())
    assert result.added == ["=cmd@example.net"]
