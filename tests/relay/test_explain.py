"""Plain-language readings of upstream replies and relay events."""

from __future__ import annotations

import pytest

from relay.explain import explain_delivery, explain_relay_event


@pytest.mark.parametrize(
    ("code", "enhanced", "text", "key"),
    [
        (550, "5.1.1", "User unknown", "mailbox_unknown"),
        (550, "", "5.1.1 The email account that you tried to reach does not exist.", "mailbox_unknown"),
        (550, "", "No such user here", "mailbox_unknown"),
        (550, "5.1.2", "Host or domain name not found", "domain_unknown"),
        (556, "5.1.10", "Recipient address has null MX", "domain_unknown"),
        (452, "4.2.2", "Mailbox full", "mailbox_full"),
        (552, "5.2.2", "User is over quota", "mailbox_full"),
        (552, "5.3.4", "Message size exceeds fixed maximum message size", "too_large"),
        (552, "", "Too much mail data", "too_large"),
        (554, "5.7.1", "Message rejected as spam", "policy"),
        (550, "", "Rejected due to DMARC policy", "policy"),
        (554, "5.7.1", "Relay access denied", "relay_denied"),
        (535, "5.7.8", "Authentication credentials invalid", "upstream_auth"),
        (None, "", "Connection refused", "unreachable"),
        (None, "", "Timed out connecting to mx.example.net", "unreachable"),
        (421, "4.3.2", "Service not available, closing channel", "unreachable"),
        (451, "4.7.1", "Greylisted, try again", "temporary"),
        (550, "", "Go away", "rejected"),
    ],
)
def test_upstream_replies_are_read_in_plain_language(code, enhanced, text, key):
    assert explain_delivery(code, enhanced, text).key == key


def test_an_expired_delivery_reads_as_giving_up_after_retries():
    reading = explain_delivery(None, "", "Connection refused", "expired")
    assert reading.summary == "gave up after retrying"
    assert "SMTP+ could not connect" in reading.explanation
    assert "upstream server is up" in reading.what_to_do


def test_wrong_credentials_say_to_retrieve_and_re_enter_them():
    reading = explain_relay_event("auth_failed", "wrong password")
    assert "Retrieve the SMTP+ credentials".lower() in reading.what_to_do.lower()
    assert "re-enter them" in reading.what_to_do


def test_a_disabled_user_is_told_apart_from_a_wrong_password():
    assert explain_relay_event("auth_failed", "user disabled").key == "user_disabled"


def test_a_rejected_www_sender_is_told_to_authorize_the_second_level_domain():
    todo = explain_relay_event("sender_rejected", address="info@www.mycompany.com").what_to_do
    assert "authorize the domain mycompany.com" in todo
    assert "not www.mycompany.com" in todo
    assert "authorize only the address info@www.mycompany.com" in todo


def test_a_plain_rejected_sender_offers_the_domain_or_the_address():
    todo = explain_relay_event("sender_rejected", address="info@mycompany.com").what_to_do
    assert "authorize the domain mycompany.com," in todo and "www." not in todo


def test_an_unreadable_from_header_is_not_explained_as_an_unauthorized_sender():
    reading = explain_relay_event(
        "from_rejected", "From: header cannot be read unambiguously: it uses the group syntax")
    assert reading.key == "header_unreadable"
    assert "authorize" not in reading.what_to_do.lower().replace("authorized", "")
