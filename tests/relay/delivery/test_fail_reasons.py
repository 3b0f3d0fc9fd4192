"""Each transport records why an attempt did not deliver as a FailReason, on the attempt
and on the recipient, from real deliveries to the loopback upstream and DNS server."""

from __future__ import annotations

import ssl

import pytest

from relay.delivery.worker import deliver_due
from relay.models import FailReason, RecipientStatus
from relay.smtp.tls import self_signed_pem
from tests.fake_upstream import queue_message
from tests.relay.delivery.test_upstreams import dns_server, mx_url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.django_db(transaction=True)


def only_recipient(message):  # noqa: ANN001, ANN201
    rcpt = message.recipients.get()
    return rcpt, rcpt.attempt_set.get()


def test_an_upstream_that_is_down_is_recorded_as_connect_failed(cast, upstream):
    upstream.down()
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=upstream.url())

    rcpt, attempt = only_recipient(message)
    assert rcpt.status == RecipientStatus.DEFERRED
    assert rcpt.last_reason == FailReason.CONNECT_FAILED
    assert attempt.reason == FailReason.CONNECT_FAILED
    assert rcpt.fail_reason == ""  # not stopped: it is retried


def test_a_permanent_refusal_is_recorded_as_rejected_on_the_attempt_too(cast, upstream):
    upstream.replies["ghost@example.net"] = "550 5.1.1 User unknown"
    message = queue_message(cast.acme_smtp, ["ghost@example.net"])

    deliver_due(upstream=upstream.url())

    rcpt, attempt = only_recipient(message)
    assert (rcpt.fail_reason, rcpt.last_reason, attempt.reason) == (FailReason.REJECTED,) * 3


def test_a_temporary_refusal_is_recorded_as_temporary(cast, upstream):
    upstream.replies["bob@example.net"] = "451 4.7.1 Greylisted"
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=upstream.url())

    rcpt, attempt = only_recipient(message)
    assert (rcpt.last_reason, attempt.reason) == (FailReason.TEMPORARY, FailReason.TEMPORARY)


def test_a_hang_up_during_data_is_recorded_as_connection_lost(cast, upstream):
    upstream.hang_up_at = "data"
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=upstream.url())

    assert only_recipient(message)[0].last_reason == FailReason.CONNECTION_LOST


def test_an_upstream_that_never_answers_data_is_recorded_as_a_timeout(cast, upstream, settings):
    settings.DELIVERY_TIMEOUT = 0.5
    upstream.hang_at = "data"
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=upstream.url())
    upstream.release()

    assert only_recipient(message)[0].last_reason == FailReason.TIMEOUT


def test_a_wrong_upstream_password_is_a_refused_session(cast, upstream):
    upstream.auth = ("relay", "right")
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=f"smtp://relay:wrong@{upstream.host}:{upstream.port}")

    rcpt, _ = only_recipient(message)
    assert rcpt.status == RecipientStatus.DEFERRED
    assert rcpt.last_reason == FailReason.SESSION_REFUSED


@pytest.fixture
def server_context(tmp_path) -> ssl.SSLContext:
    cert_pem, key_pem = self_signed_pem(["upstream.test", "127.0.0.1"])
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


def test_an_untrusted_certificate_is_recorded_as_tls_failed(cast, upstream, server_context):
    upstream.tls = server_context
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=upstream.url())

    assert only_recipient(message)[0].last_reason == FailReason.TLS_FAILED


def test_tls_required_but_not_offered_is_recorded_as_tls_failed_before_any_login(cast, upstream):
    upstream.auth = ("relay", "secret")
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=upstream.url(tls="require", verify="no"))  # with the credentials

    rcpt, _ = only_recipient(message)
    assert rcpt.last_reason == FailReason.TLS_FAILED
    assert "STARTTLS" in rcpt.last_text
    assert upstream.received == []


def test_dns_outcomes_of_the_mx_upstream_are_recorded_by_reason(cast, upstream, dns_server, mx_url):  # noqa: F811
    dns_server.records[("nomail.example", "MX")] = ["0 ."]
    dns_server.nxdomain.add("nowhere.example")
    dns_server.servfail.add("broken.example")
    dns_server.records[("noaddr.example", "MX")] = ["10 mx.noaddr.example."]
    message = queue_message(cast.acme_smtp, [
        "a@nomail.example", "b@nowhere.example", "c@broken.example", "d@noaddr.example",
    ])

    deliver_due(upstream=mx_url)

    got = {r.address: (r.status, r.last_reason) for r in message.recipients.all()}
    assert got == {
        "a@nomail.example": ("failed", FailReason.NULL_MX),
        "b@nowhere.example": ("failed", FailReason.NO_SUCH_DOMAIN),
        "c@broken.example": ("deferred", FailReason.DNS_FAILED),
        "d@noaddr.example": ("deferred", FailReason.NO_ADDRESS),
    }


def test_a_maildir_that_cannot_be_written_is_recorded_as_write_failed(cast, tmp_path):
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the Maildir should be")
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=f"maildir:{blocked}")

    rcpt, _ = only_recipient(message)
    assert (rcpt.status, rcpt.last_reason) == ("deferred", FailReason.WRITE_FAILED)
