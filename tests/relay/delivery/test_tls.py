"""TLS to the smarthost: STARTTLS when offered, certificates checked unless told not to."""

from __future__ import annotations

import ssl

import pytest

from relay.delivery.worker import deliver_due
from relay.models import RecipientStatus
from relay.smtp.tls import self_signed_pem
from tests.fake_upstream import FakeUpstream, queue_message

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def server_context(tmp_path) -> ssl.SSLContext:
    cert_pem, key_pem = self_signed_pem(["upstream.test", "127.0.0.1"])
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


@pytest.fixture
def tls_upstream(upstream: FakeUpstream, server_context) -> FakeUpstream:
    upstream.tls = server_context
    return upstream


def test_an_untrusted_certificate_defers_delivery_by_default(cast, tls_upstream):
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=tls_upstream.url())

    rcpt = message.recipients.get()
    assert rcpt.status == RecipientStatus.DEFERRED
    assert "certificate" in rcpt.last_text.lower()
    assert tls_upstream.received == []


def test_starttls_is_used_when_offered_and_verify_no_accepts_a_self_signed_certificate(
    cast, tls_upstream
):
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=tls_upstream.url(verify="no"))

    assert message.recipients.get().status == RecipientStatus.DELIVERED
    [got] = tls_upstream.received
    assert got.tls


def test_tls_require_refuses_an_upstream_without_starttls(cast, upstream):
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=upstream.url(tls="require", verify="no"))

    rcpt = message.recipients.get()
    assert rcpt.status == RecipientStatus.DEFERRED
    assert "STARTTLS" in rcpt.last_text or "starttls" in rcpt.last_text.lower()
    assert upstream.received == []


def test_smtps_speaks_tls_from_the_first_byte(cast, tls_upstream):
    tls_upstream.implicit_tls = True
    tls_upstream.down()
    tls_upstream.up()
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=tls_upstream.url("smtps", verify="no"))

    assert message.recipients.get().status == RecipientStatus.DELIVERED
    assert tls_upstream.received[0].tls
