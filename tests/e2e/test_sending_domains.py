"""In a real browser, the whole way: add a sending domain, publish its token (in the
test DNS server), Check now, authorize it for an SMTP+ user, send through the relay, and
the message is delivered upstream."""

from __future__ import annotations

import smtplib
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connections

from accounts.models import DomainStatus, SendingDomain
from relay.delivery.worker import deliver_due
from tests.conftest import PASSWORD
from tests.e2e.conftest import log_in
from tests.smtp_relay import message

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def deliver_on_this_thread(upstream_url: str) -> dict:
    try:
        return deliver_due(upstream=upstream_url)
    finally:
        connections.close_all()


def test_a_domain_is_added_verified_authorized_and_sent_as(page, relay, cast, dns_server, upstream):
    dns_server.set_records("e2e-flow.test", [])
    log_in(page, "alice@acme.test", PASSWORD)
    page.click("nav >> text=Sending domains")
    page.fill("#id_domain", "e2e-flow.test")
    page.click("#domain-add button[type=submit]")
    page.wait_for_selector("#verification-record")
    assert page.inner_text("h1 .badge") == "unverified"
    assert page.inner_text("#verification-record code >> nth=0") == "_smtpplus.e2e-flow.test"
    value = page.inner_text("#verification-value")
    assert value.startswith("smtpplus-verification=")
    assert page.inner_text("#verification-zone-line") == (
        f'_smtpplus.e2e-flow.test. IN TXT "{value}"')

    # Before the record is published, the user cannot be authorized for it.
    page.goto(f"/users/{cast.acme_smtp.pk}/")
    page.fill("#id_domains", "e2e-flow.test")
    page.click("#senders-form button[type=submit]")
    assert ("e2e-flow.test is a sending domain of this account but not verified yet"
            in page.inner_text(".senders-errors"))

    dns_server.set_records("e2e-flow.test", [("_smtpplus", "TXT", f'"{value}"')])
    page.click("nav >> text=Sending domains")
    page.click("text=e2e-flow.test")
    page.click("#check-now button")
    page.wait_for_selector(".flash")
    assert "e2e-flow.test is now verified." in page.inner_text(".flash")
    assert page.inner_text("h1 .badge") == "verified"
    assert SendingDomain.objects.get(domain="e2e-flow.test").status == DomainStatus.VERIFIED

    page.goto(f"/users/{cast.acme_smtp.pk}/")
    page.fill("#id_domains", "e2e-flow.test")
    page.click("#senders-form button[type=submit]")
    page.wait_for_selector(".flash")
    assert "e2e-flow.test" in page.inner_text("table.domains")

    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        refused = smtp.sendmail("news@e2e-flow.test", ["reader@example.net"],
                                message(from_="News <news@e2e-flow.test>"))
    assert refused == {}
    # On a thread of its own: Playwright keeps an event loop running on this one.
    with ThreadPoolExecutor(1) as pool:
        stats = pool.submit(deliver_on_this_thread, upstream.url()).result(timeout=60)
    assert stats["delivered"] == 1
    [got] = upstream.received
    assert got.mail_from == "news@e2e-flow.test" and got.rcpt_tos == ["reader@example.net"]
    assert b"From: News <news@e2e-flow.test>" in got.data
