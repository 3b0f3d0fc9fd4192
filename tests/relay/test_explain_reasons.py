"""The explainer per FailReason: every reason SMTP+ records reads in plain words of its
own, and a reason that says more than the reply text wins over reading that text."""

from __future__ import annotations

import pytest

from relay.explain import explain_attempt, explain_delivery
from relay.models import FailReason

# The reasons whose reading does not depend on an upstream reply, and its key.
OWN_READINGS = {
    FailReason.CONNECT_FAILED: "unreachable",
    FailReason.CONNECTION_LOST: "connection_lost",
    FailReason.TIMEOUT: "timeout",
    FailReason.TLS_FAILED: "tls_failed",
    FailReason.DNS_FAILED: "dns_failed",
    FailReason.NO_ADDRESS: "no_address",
    FailReason.NULL_MX: "null_mx",
    FailReason.NO_SUCH_DOMAIN: "no_such_domain",
    FailReason.SMTPUTF8: "smtputf8",
    FailReason.UNDELIVERABLE: "undeliverable",
    FailReason.WRITE_FAILED: "write_failed",
    FailReason.INTERNAL_ERROR: "internal_error",
    FailReason.CANCELLED: "cancelled",
}


@pytest.mark.parametrize("reason", list(FailReason))
def test_every_fail_reason_has_a_plain_reading_with_what_to_do(reason):
    # What the delivery step stores: the attempt's reason, and why the recipient stopped.
    last = FailReason.TIMEOUT if reason in (FailReason.EXPIRED, FailReason.CANCELLED) else reason
    reading = explain_delivery(None, "", "", reason, last_reason=last)
    assert reading.key != "unknown"
    # The summary ends alert subjects ("… (Acme) — recipient mailbox does not exist").
    assert reading.summary and not reading.summary.endswith(".")
    assert reading.explanation.endswith(".") and reading.what_to_do.endswith(".")


@pytest.mark.parametrize(("reason", "key"), list(OWN_READINGS.items()))
def test_a_reason_smtp_plus_knows_itself_is_read_without_the_reply_text(reason, key):
    # The text would read as something else: the recorded reason decides.
    assert explain_attempt(None, "4.4.1", "Mailbox full", reason).key == key


def test_every_reason_not_read_from_a_reply_has_its_own_reading():
    reply_reasons = {FailReason.REJECTED, FailReason.TEMPORARY, FailReason.SESSION_REFUSED,
                     FailReason.EXPIRED}
    assert set(OWN_READINGS) == set(FailReason) - reply_reasons
    assert len(set(OWN_READINGS.values())) == len(OWN_READINGS)


@pytest.mark.parametrize(
    ("code", "enhanced", "text", "reason", "key"),
    [
        (550, "5.1.1", "User unknown", FailReason.REJECTED, "mailbox_unknown"),
        (554, "5.7.1", "Message rejected as spam", FailReason.REJECTED, "policy"),
        (550, "", "Go away", FailReason.REJECTED, "rejected"),
        (452, "4.2.2", "Mailbox full", FailReason.TEMPORARY, "mailbox_full"),
        (451, "4.7.1", "Greylisted", FailReason.TEMPORARY, "temporary"),
        (535, "5.7.8", "Authentication credentials invalid", FailReason.SESSION_REFUSED,
         "upstream_auth"),
        (421, "4.3.2", "Service not available", FailReason.SESSION_REFUSED, "unreachable"),
    ],
)
def test_where_the_upstream_answered_its_reply_is_read(code, enhanced, text, reason, key):
    assert explain_delivery(code, enhanced, text, reason, last_reason=reason).key == key


def test_an_expiry_says_what_the_last_attempt_met():
    reading = explain_delivery(None, "4.4.2", "Timed out connecting to mx.example.net",
                               FailReason.EXPIRED, last_reason=FailReason.TIMEOUT)
    assert reading.summary == "gave up after retrying"
    assert "did not answer within DELIVERY_TIMEOUT" in reading.explanation


def test_a_cancelled_recipient_reads_as_cancelled_whatever_its_last_reply():
    reading = explain_delivery(451, "4.3.0", "Busy", FailReason.CANCELLED,
                               last_reason=FailReason.TEMPORARY)
    assert reading.key == "cancelled"


def test_a_delayed_recipient_says_how_long_and_what_the_last_attempt_met():
    reading = explain_delivery(None, "4.4.1", "Could not connect", "",
                               last_reason=FailReason.TLS_FAILED, delayed_minutes=30)
    assert reading.summary == "encryption with the upstream server failed"
    assert "after 30 minutes" in reading.explanation
    assert "certificate" in reading.explanation
