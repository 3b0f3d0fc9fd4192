"""STARTTLS and implicit TLS with a certificate made in the test; AUTH before TLS."""

from __future__ import annotations

import smtplib
import ssl

import pytest
from django.core.management import call_command

from relay.models import ConnectionStat, EventKind, RelayEvent
from relay.smtp.tls import self_signed_pem
from tests.smtp_relay import dialog


@pytest.fixture
def cert_files(tmp_path):
    cert_pem, key_pem = self_signed_pem(["relay.test", "127.0.0.1"])
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


@pytest.fixture
def tls_relay(start_relay, cert_files):
    cert, key = cert_files
    return start_relay(RELAY_TLS_CERT=str(cert), RELAY_TLS_KEY=str(key),
                       RELAY_LISTEN_TLS="127.0.0.1:0")


def client_context(cert_files) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert_files[0]))
    return context


def test_auth_is_hidden_and_refused_before_starttls(tls_relay, cast):
    replies = dialog(tls_relay.host, tls_relay.port, [b"EHLO c", b"AUTH PLAIN AGZvbwBiYXI="])
    assert "250-STARTTLS" in replies[1]
    assert "AUTH" not in replies[1]
    assert replies[2] == "538 5.7.11 Encryption required for requested authentication mechanism"
    tls_relay.flush()
    assert RelayEvent.objects.get(kind=EventKind.TLS_REQUIRED).reason == "TLS required"


def test_starttls_then_auth_and_send(tls_relay, cast, cert_files):
    with smtplib.SMTP(tls_relay.host, tls_relay.port, timeout=10) as smtp:
        smtp.starttls(context=client_context(cert_files))
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        assert smtp.sendmail("shop@acme.test", ["a@example.net"], b"From: shop@acme.test\r\n\r\nx\r\n") == {}


def test_implicit_tls_port_allows_auth_at_once(tls_relay, cast, cert_files):
    port = tls_relay.tls_port
    assert port is not None
    with smtplib.SMTP_SSL(tls_relay.host, port, timeout=10,
                          context=client_context(cert_files)) as smtp:
        code, features = smtp.ehlo()
        assert b"AUTH LOGIN PLAIN" in features
        assert b"STARTTLS" not in features
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        assert smtp.sendmail("shop@acme.test", ["a@example.net"], b"From: shop@acme.test\r\n\r\nx\r\n") == {}


def test_tls_can_be_offered_without_being_required(start_relay, cast, cert_files):
    cert, key = cert_files
    relay = start_relay(RELAY_TLS_CERT=str(cert), RELAY_TLS_KEY=str(key), RELAY_REQUIRE_TLS=False)
    replies = dialog(relay.host, relay.port, [b"EHLO c"])
    assert "250-STARTTLS" in replies[1] and "250-AUTH LOGIN PLAIN" in replies[1]


def test_makecert_writes_a_certificate_the_relay_can_use(tmp_path):
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    call_command("makecert", "--cert", str(cert), "--key", str(key), "--host", "relay.test")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    assert key.stat().st_mode & 0o077 == 0


def test_logins_over_tls_are_counted_apart_from_plain_ones(start_relay, cast, cert_files):
    cert, key = cert_files
    relay = start_relay(RELAY_TLS_CERT=str(cert), RELAY_TLS_KEY=str(key), RELAY_REQUIRE_TLS=False,
                        RELAY_LISTEN_TLS="127.0.0.1:0")
    user, password = cast.acme_smtp.username, cast.acme_smtp_password
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(user, password)  # plain text: TLS offered, not required
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.starttls(context=client_context(cert_files))
        smtp.login(user, password)
    with smtplib.SMTP_SSL(relay.host, relay.tls_port, timeout=10,
                          context=client_context(cert_files)) as smtp:
        smtp.login(user, password)
    relay.flush()
    rows = {r.port: (r.logins, r.tls_logins)
            for r in ConnectionStat.objects.filter(smtp_user=cast.acme_smtp)}
    assert rows == {relay.port: (2, 1), relay.tls_port: (1, 1)}
