"""Browser: the troubleshooter tells whether recipients will trust the user's mail, with the
records to publish, and turns ok once they are published and the domain checked again."""

from __future__ import annotations

import pytest

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
