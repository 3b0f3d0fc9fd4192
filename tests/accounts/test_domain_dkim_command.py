"""`manage.py domain dkim-show|dkim-rotate`, the records include for the domain page, and
`rotatecredentials` for DKIM keys."""

from __future__ import annotations

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.template.loader import render_to_string

from accounts.actions.dkim_keys import ensure_keys, publish_rows, refresh_keys
from accounts.domains.dkim import decrypt_private_key
from accounts.models import AuditEvent, DkimKey, DomainStatus, SendingDomain, VerifiedHow
from tests.dkim_verifier import publish, verified_domain


def run(*args: str) -> dict:
    out = io.StringIO()
    call_command("domain", *args, stdout=out)
    return json.loads(out.getvalue())


@pytest.fixture
def acme_domain(cast) -> SendingDomain:
    return verified_domain(cast.acme, "acme.test")


def test_dkim_show_prints_the_record_to_publish_and_never_the_private_key(acme_domain):
    result = run("dkim-show", "ACME.test.")
    [key] = result["keys"]
    assert result["domain"] == "acme.test" and result["account"] == "acme"
    assert key["state"] == "pending" and key["algorithm"] == "rsa"
    row = DkimKey.objects.get()
    assert key["record"]["name"] == f"{row.selector}._domainkey.acme.test"
    assert key["record"]["value"] == f"v=DKIM1; k=rsa; p={row.public_key}"
    assert "".join(key["record"]["strings"]) == key["record"]["value"]
    assert key["record"]["zone_line"].startswith(f"{row.selector}._domainkey.acme.test. 3600 IN TXT \"")
    printed = json.dumps(result)
    assert row.private_key_encrypted not in printed and "PRIVATE" not in printed
    assert "findings" not in result  # no DNS lookup without --check


def test_dkim_show_check_looks_the_record_up_and_activates_a_published_key(acme_domain, dns_server):
    [key] = ensure_keys(acme_domain)
    publish(dns_server, "acme.test", [key])
    result = run("dkim-show", "acme.test", "--check")
    assert result["keys"][0]["state"] == "active"
    assert result["keys"][0]["dns_status"] == "match"
    assert [f["severity"] for f in result["findings"]] == ["ok"]


def test_dkim_rotate_publishes_two_keys_switches_once_the_new_one_verifies(acme_domain, dns_server):
    [old] = ensure_keys(acme_domain)
    publish(dns_server, "acme.test", [old])
    refresh_keys(acme_domain)

    started = run("dkim-rotate", "acme.test")
    [new_selector] = started["new_selectors"]
    assert [(k["selector"], k["state"]) for k in started["keys"]] == [
        (old.selector, "active"), (new_selector, "pending")]
    assert f"{new_selector}._domainkey.acme.test" in started["next"]

    again = run("dkim-rotate", "acme.test")  # not yet published: still waiting, no third key
    assert again["new_selectors"] == [] and len(again["keys"]) == 2

    publish(dns_server, "acme.test", DkimKey.objects.all())
    switched = run("dkim-rotate", "acme.test")
    states = {k["selector"]: k["state"] for k in switched["keys"]}
    assert states == {old.selector: "retiring", new_selector: "active"}
    retiring = next(k for k in switched["keys"] if k["state"] == "retiring")
    assert retiring["retire_after"] is not None
    assert AuditEvent.objects.filter(action="dkim.rotate").get().actor_label.startswith(
        "command line")


def test_an_unknown_domain_and_an_ambiguous_one_are_refused_with_what_to_do(acme_domain, cast):
    with pytest.raises(CommandError, match="nope.test is not a sending domain"):
        run("dkim-show", "nope.test")
    with pytest.raises(CommandError, match="not a domain"):
        run("dkim-show", "shop@acme.test")
    SendingDomain.objects.create(account=cast.globex, domain="acme.test", token="x",
                                 status=DomainStatus.VERIFIED, verified_how=VerifiedHow.UPGRADE)
    with pytest.raises(CommandError, match="--account"):
        run("dkim-show", "acme.test")
    assert run("dkim-show", "acme.test", "--account", "globex")["account"] == "globex"


def test_rotatecredentials_reencrypts_dkim_private_keys(acme_domain, cast, settings):
    old_key = Fernet.generate_key().decode()
    settings.SMTPPLUS_CREDENTIAL_KEYS = [old_key]
    for smtp_user, password in [(cast.acme_smtp, cast.acme_smtp_password),
                                (cast.globex_smtp, cast.globex_smtp_password)]:
        smtp_user.set_password(password)  # made under the development key
        smtp_user.save()
    [key] = ensure_keys(acme_domain)
    private = decrypt_private_key(key.private_key_encrypted)
    new_key = Fernet.generate_key().decode()
    settings.SMTPPLUS_CREDENTIAL_KEYS = [new_key, old_key]

    out = io.StringIO()
    call_command("rotatecredentials", stdout=out)

    assert json.loads(out.getvalue())["dkim_keys"] == 1
    key.refresh_from_db()
    assert Fernet(new_key.encode()).decrypt(key.private_key_encrypted.encode()) == private


def test_the_records_include_shows_each_record_with_copy_buttons(acme_domain, dns_server):
    [key] = ensure_keys(acme_domain)
    html = render_to_string("accounts/domains/_dkim_records.html", {"domain": acme_domain})
    record = publish_rows(acme_domain)[0].record
    assert f'<code id="dkim-name-{key.pk}">{record.name}</code>' in html
    assert f'data-copy="#dkim-value-{key.pk}"' in html
    assert record.strings[0] in html and record.strings[1] in html
    assert "&quot;v=DKIM1; k=rsa; p=" in html  # the quotes of the TXT strings, escaped
    assert "Pending" in html and "not checked yet" in html


def test_the_records_include_says_when_a_domain_has_no_key_yet(acme_domain):
    html = render_to_string("accounts/domains/_dkim_records.html", {"domain": acme_domain})
    assert "no DKIM key yet" in html and "<table" not in html
