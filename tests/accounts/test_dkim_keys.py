"""DKIM keys of sending domains: generation, the record to publish, the check against the
real DNS server, and rotation."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_private_key
from django.utils import timezone

from accounts.actions.dkim_keys import (
    ensure_keys,
    findings,
    live_keys,
    record_of,
    refresh_keys,
    start_rotation,
)
from accounts.domains.dkim import (
    compare_published,
    decrypt_private_key,
    dkim_record,
    generate_key,
    split_txt,
)
from accounts.models import AuditEvent, DkimKeyState, SendingDomain
from smtpplus.dns import lookup_txt
from tests.dkim_verifier import publish, verified_domain


@pytest.fixture
def acme_domain(cast) -> SendingDomain:
    return verified_domain(cast.acme, "acme.test")


# --- keys and records ---------------------------------------------------------------------
def test_an_rsa_key_is_2048_bits_and_its_record_holds_the_public_half():
    key = generate_key("rsa")
    private = load_pem_private_key(key.private_key, None)
    public = load_der_public_key(base64.b64decode(key.public_key))
    assert private.key_size == 2048
    assert public.public_numbers() == private.public_key().public_numbers()


def test_an_ed25519_record_holds_the_raw_32_byte_key():
    key = generate_key("ed25519")
    assert len(base64.b64decode(key.public_key)) == 32
    assert dkim_record("s", "acme.test", "ed25519", key.public_key).value.startswith(
        "v=DKIM1; k=ed25519; p=")


def test_the_rsa_record_is_split_into_strings_of_at_most_255_bytes_that_join_to_the_value():
    key = generate_key("rsa")
    record = dkim_record("sp1", "acme.test", "rsa", key.public_key)
    assert record.name == "sp1._domainkey.acme.test"
    assert record.value == f"v=DKIM1; k=rsa; p={key.public_key}"
    assert len(record.strings) == 2
    assert all(len(s.encode()) <= 255 for s in record.strings)
    assert "".join(record.strings) == record.value
    assert record.zone_line == (
        f'sp1._domainkey.acme.test. 3600 IN TXT "{record.strings[0]}" "{record.strings[1]}"')


def test_splitting_cuts_exactly_at_255_bytes():
    assert split_txt("a" * 255) == ("a" * 255,)
    assert split_txt("a" * 256) == ("a" * 255, "a")


def test_the_record_as_published_from_the_zone_line_is_read_back_as_the_value(dns_server):
    key = generate_key("rsa")
    record = dkim_record("zone", "records.test", "rsa", key.public_key)
    dns_server.set_records("records.test", [(record.name + ".", "TXT", record.quoted)])
    assert lookup_txt(record.name).records == (record.value,)


# --- the check ----------------------------------------------------------------------------
def _check(name, key):
    found = lookup_txt(name)
    return compare_published(found.status, found.records, found.error, name=name,
                             algorithm="rsa", public_key=key.public_key)


def test_the_check_tells_match_missing_and_mismatch_apart(dns_server):
    key, other = generate_key("rsa"), generate_key("rsa")
    ours = dkim_record("good", "check.test", "rsa", key.public_key)
    theirs = dkim_record("bad", "check.test", "rsa", other.public_key)
    dns_server.set_records("check.test", [
        ("good._domainkey", "TXT", ours.quoted),
        ("bad._domainkey", "TXT", theirs.quoted),
        ("revoked._domainkey", "TXT", '"v=DKIM1; k=rsa; p="'),
        ("ed._domainkey", "TXT", f'"v=DKIM1; k=ed25519; p={key.public_key[:44]}"'),
        ("twice._domainkey", "TXT", ours.quoted),
        ("twice._domainkey", "TXT", theirs.quoted),
        ("www", "A", "192.0.2.1"),
    ])
    assert _check("good._domainkey.check.test", key).status == "match"
    assert _check("bad._domainkey.check.test", key).status == "mismatch"
    revoked = _check("revoked._domainkey.check.test", key)
    assert revoked.status == "mismatch" and "revoked" in revoked.detail
    assert "k=ed25519" in _check("ed._domainkey.check.test", key).detail
    assert "2 DKIM records" in _check("twice._domainkey.check.test", key).detail
    assert _check("absent._domainkey.check.test", key).status == "missing"
    assert _check("www.check.test", key).status == "missing"


def test_servfail_could_not_check_never_missing(dns_server):
    dns_server.break_zone("servfail.test")
    result = _check("sel._domainkey.servfail.test", generate_key("rsa"))
    assert result.status == "could-not-check"
    assert "SERVFAIL" in result.detail


def test_a_timeout_could_not_check_never_missing(dns_server, settings):
    settings.SMTPPLUS_DNS_RESOLVERS = [dns_server.silent_address]
    settings.SMTPPLUS_DNS_TIMEOUT = 0.5
    result = _check("sel._domainkey.acme.test", generate_key("rsa"))
    assert result.status == "could-not-check"
    assert "timeout" in result.detail


# --- keys of a domain ---------------------------------------------------------------------
def test_a_domain_gets_a_pending_rsa_key_with_its_private_part_encrypted(acme_domain):
    [key] = ensure_keys(acme_domain)
    assert key.state == DkimKeyState.PENDING and key.algorithm == "rsa"
    assert b"PRIVATE KEY" not in key.private_key_encrypted.encode()
    assert b"PRIVATE KEY" in decrypt_private_key(key.private_key_encrypted)
    assert ensure_keys(acme_domain) == []  # one is enough
    assert AuditEvent.objects.filter(action="dkim.create", target_id=str(key.pk)).exists()
    assert key.private_key_encrypted not in str(AuditEvent.objects.get(action="dkim.create").details)


def test_with_ed25519_on_a_domain_gets_a_second_key(acme_domain, settings):
    settings.SMTPPLUS_DKIM_ED25519 = True
    keys = ensure_keys(acme_domain)
    assert sorted(k.algorithm for k in keys) == ["ed25519", "rsa"]
    assert len({k.selector for k in keys}) == 2


def test_a_pending_key_becomes_active_once_its_record_is_published(acme_domain, dns_server):
    [key] = ensure_keys(acme_domain)
    dns_server.set_records("acme.test", [])
    [check] = refresh_keys(acme_domain)
    assert check.check.status == "missing"
    key.refresh_from_db()
    assert key.state == DkimKeyState.PENDING and key.dns_status == "missing"
    [finding] = findings([check])
    assert finding.severity == "warning" and finding.fix == record_of(key).quoted

    publish(dns_server, "acme.test", [key])
    refresh_keys(acme_domain)
    key.refresh_from_db()
    assert key.state == DkimKeyState.ACTIVE and key.activated_at is not None
    assert key.dns_status == "match"


def test_a_check_that_could_not_run_leaves_a_pending_key_pending(acme_domain, dns_server):
    [key] = ensure_keys(acme_domain)
    dns_server.break_zone("acme.test")
    [check] = refresh_keys(acme_domain)
    key.refresh_from_db()
    assert key.state == DkimKeyState.PENDING
    assert key.dns_status.startswith("error:")
    assert findings([check])[0].severity == "unknown"


def test_a_rotation_switches_when_the_new_record_verifies_and_retires_the_old_after_the_grace(
    acme_domain, dns_server, settings
):
    settings.SMTPPLUS_DKIM_ROTATION_GRACE = 3600
    [old] = ensure_keys(acme_domain)
    publish(dns_server, "acme.test", [old])
    refresh_keys(acme_domain)

    [new] = start_rotation(acme_domain)
    assert start_rotation(acme_domain) == []  # one rotation at a time
    assert [k.selector for k in live_keys(acme_domain)] == [old.selector, new.selector]
    refresh_keys(acme_domain)  # the new record is not published yet: nothing switches
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.state, new.state) == (DkimKeyState.ACTIVE, DkimKeyState.PENDING)

    publish(dns_server, "acme.test", [old, new])  # both published
    now = timezone.now()
    refresh_keys(acme_domain, now=now)
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.state, new.state) == (DkimKeyState.RETIRING, DkimKeyState.ACTIVE)
    assert old.retiring_since == now

    refresh_keys(acme_domain, now=now + timedelta(seconds=3599))
    old.refresh_from_db()
    assert old.state == DkimKeyState.RETIRING and old.private_key_encrypted

    refresh_keys(acme_domain, now=now + timedelta(seconds=3600))
    old.refresh_from_db()
    assert old.state == DkimKeyState.RETIRED and old.private_key_encrypted == ""
    assert [k.selector for k in live_keys(acme_domain)] == [new.selector]
    assert list(AuditEvent.objects.filter(action__startswith="dkim.")
                .order_by("id").values_list("action", flat=True)) == [
        "dkim.create", "dkim.activate", "dkim.rotate", "dkim.activate", "dkim.retire"]


def test_the_domain_check_gives_a_new_domain_its_key_and_says_what_to_publish(
    acme_domain, dns_server
):
    from accounts.actions.dkim_keys import domain_check
    from smtpplus.dns import make_resolver

    dns_server.set_records("acme.test", [])
    [finding] = domain_check(acme_domain, make_resolver())
    [key] = live_keys(acme_domain)
    assert finding.check == "dkim" and finding.severity == "warning"
    assert finding.record_name == record_of(key).name and finding.record_type == "TXT"
    assert finding.fix == record_of(key).quoted
    publish(dns_server, "acme.test", [key])
    assert [f.severity for f in domain_check(acme_domain, make_resolver())] == ["ok"]
