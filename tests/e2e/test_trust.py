"""Browser: the troubleshooter tells whether recipients will trust the user's mail, with the
records to publish, and turns ok once they are published and the domain checked again."""

from __future__ import annotations

import pytest

from accounts.actions.dkim_keys import live_keys, record_of
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.relay.troubleshooter.test_trust import GOOD, checked, sending

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_trust_check_shows_the_fixes_then_turns_ok(page, cast, dns_server, settings):
    settings.RELAY_EGRESS_IPS = ["203.0.113.7"]
    dns_server.set_records("acme.test", [("@", "TXT", '"v=spf1 ip4:198.51.100.1 -all"')])
    domain = checked(sending(cast.acme))
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto(f"/users/{cast.acme_smtp.pk}/troubleshoot/")
    check = page.locator("#check-trust")
    assert check.get_attribute("data-status") == "problem"
    assert "Recipients may not trust this user's mail" in check.locator("h2").inner_text()
    text = check.inner_text()
    assert 'acme.test. IN TXT "v=spf1 ip4:198.51.100.1 ip4:203.0.113.7 -all"' in text
    assert '_dmarc.acme.test. IN TXT "v=DMARC1; p=none; rua=mailto:dmarc-reports@acme.test"' in text
    assert page.locator('#summary ~ a[href="#check-trust"]').count() == 1
    # The records are published and the domain checked again.
    dns_server.set_records("acme.test", GOOD)
    checked(domain)
    page.reload()
    check = page.locator("#check-trust")
    assert check.get_attribute("data-status") == "ok"
    assert "pass every provider rule" in check.inner_text()


def test_check_now_on_the_domain_page_shows_spf_and_dmarc_with_the_fix(page, cast, dns_server,
                                                                    settings):
    settings.RELAY_EGRESS_IPS = ["203.0.113.7"]
    domain = sending(cast.acme, "e2e-health.test", dkim="")
    dns_server.set_records("e2e-health.test", [("@", "TXT", '"v=spf1 ip4:198.51.100.1 ~all"')])
    log_in(page, "alice@acme.test", PASSWORD)
    page.goto(f"/domains/{domain.pk}/")
    assert "Not checked yet" in page.inner_text("#health")
    page.click("#check-now button")
    page.wait_for_selector("#health-verdicts")
    refused = page.locator('#health [data-code="spf.not_authorized"]')
    assert refused.locator("pre").inner_text() == (
        'e2e-health.test. IN TXT "v=spf1 ip4:198.51.100.1 ip4:203.0.113.7 ~all"')
    assert page.locator('#health [data-code="dmarc.none"]').count() == 1
    # Neither SPF nor DKIM passes yet (the DKIM record is not published): every rule fails.
    assert page.locator('#health-verdicts tr[data-result="fail"]').count() == 5
    # The fixes are published, and the DKIM records the page shows; the next check passes
    # every rule.
    dkim = [(record.name.removesuffix(".e2e-health.test"), "TXT", record.quoted)
            for record in (record_of(key) for key in live_keys(domain))]
    assert dkim
    dns_server.set_records("e2e-health.test", [
        ("@", "TXT", '"v=spf1 ip4:198.51.100.1 ip4:203.0.113.7 ~all"'),
        ("_dmarc", "TXT", '"v=DMARC1; p=quarantine; rua=mailto:d@e2e-health.test"'), *dkim])
    page.click("#check-now button")
    page.wait_for_selector('#health [data-code="dmarc.p_quarantine"]')
    assert page.locator('#health-verdicts tr[data-result="pass"]').count() == 5
