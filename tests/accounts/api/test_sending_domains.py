"""/api/v1/sending-domains: list, add, show, check — against the real DNS server."""

from __future__ import annotations

import pytest

from accounts.models import AuditEvent, SendingDomain

pytestmark = pytest.mark.django_db


def test_it_lists_the_accounts_sending_domains_with_their_status(acme_reader, cast):
    data = acme_reader.get("/sending-domains").json()
    assert [(d["domain"], d["status"], d["verified_how"]) for d in data] == [
        ("acme.test", "verified", "operator")]
    assert data[0]["verification_record"]["name"] == "_smtpplus.acme.test"


def test_it_adds_a_domain_then_a_check_verifies_it(acme_api, cast, dns_server):
    answer = acme_api.post("/sending-domains", {"domain": "Api.Example."})
    assert answer.status_code == 201
    created = answer.json()
    assert (created["domain"], created["status"], created["findings"]) == (
        "api.example", "unverified", [])
    assert AuditEvent.objects.get(action="domain.add").actor_label == "API key: acme admin key"
    dns_server.set_records("api.example", [
        ("_smtpplus", "TXT", f'"{created["verification_record"]["value"]}"'),
        ("@", "TXT", '"v=spf1 -all"'), ("_dmarc", "TXT", '"v=DMARC1; p=reject; rua=mailto:d@api.example"')])
    checked = acme_api.post(f"/sending-domains/{created['id']}/check").json()
    assert checked["status"] == "verified" and checked["verified_how"] == "dns"
    # Its DKIM key is not published yet: the findings say what to publish.
    assert checked["verdict"] == "warning"
    assert [f["check"] for f in checked["findings"]][:2] == ["verification", "dkim"]
    assert acme_api.get(f"/sending-domains/{created['id']}").json()["status"] == "verified"


def test_a_bad_or_duplicate_domain_is_refused_naming_it(acme_api, cast):
    bad = acme_api.post("/sending-domains", {"domain": "x@y.test"})
    assert bad.status_code == 422 and bad.json() == {
        "code": "invalid_domain", "message": "x@y.test: this is an email address, not a domain"}
    again = acme_api.post("/sending-domains", {"domain": "acme.test"})
    assert again.status_code == 422
    assert "already a sending domain of this account" in again.json()["message"]
    assert SendingDomain.objects.filter(account=cast.acme).count() == 1
