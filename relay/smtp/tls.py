"""TLS for the relay: the server context, a self-signed certificate for development,
and the two handshakes (STARTTLS, and implicit TLS on its own ports), both under
RELAY_TLS_HANDSHAKE_TIMEOUT rather than the idle timeout."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import ssl
from asyncio import sslproto
from pathlib import Path
from typing import TYPE_CHECKING

from aiosmtpd.smtp import TLSSetupException
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relay.smtp.replies import READY_FOR_TLS

if TYPE_CHECKING:
    from relay.smtp.protocol import RelaySMTP

log = logging.getLogger("relay.smtp")


def server_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """TLS 1.2+ server context; raises OSError/ssl.SSLError with the file at fault."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    return context


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def self_signed_pem(names: list[str], days: int = 365) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM) for `names` (host names or IP addresses)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(_san(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return cert_pem, key_pem


def write_self_signed(cert_file: Path, key_file: Path, names: list[str], days: int = 365) -> None:
    cert_pem, key_pem = self_signed_pem(names, days)
    cert_file.parent.mkdir(parents=True, exist_ok=True)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    cert_file.write_bytes(cert_pem)
    key_file.touch(mode=0o600, exist_ok=True)
    key_file.chmod(0o600)
    key_file.write_bytes(key_pem)


# --- handshakes ---------------------------------------------------------------------
async def start_tls(smtp: RelaySMTP) -> None:
    """aiosmtpd's STARTTLS, with the relay's handshake timeout (and not the idle one)."""
    assert smtp.tls_context is not None
    await smtp.push(READY_FOR_TLS)
    waiter = smtp.loop.create_future()
    smtp._tls_protocol = sslproto.SSLProtocol(
        smtp.loop, smtp, smtp.tls_context, waiter, server_side=True,
        ssl_handshake_timeout=smtp.context.config.tls_handshake_timeout)  # type: ignore[arg-type]
    smtp._original_transport = smtp.transport
    assert smtp._original_transport is not None and smtp._timeout_handle is not None
    smtp._timeout_handle.cancel()  # connection_made() starts it again after the handshake
    smtp._original_transport.set_protocol(smtp._tls_protocol)
    smtp.transport = smtp._tls_protocol._app_transport
    smtp._tls_protocol.connection_made(smtp._original_transport)
    try:
        await waiter
    except asyncio.CancelledError:
        raise
    except Exception as error:
        raise TLSSetupException() from error


class ImplicitTLS(asyncio.Protocol):
    """Accepts a connection on an implicit-TLS port: counts it against its client's limit
    at once (before any handshake), runs the handshake under RELAY_TLS_HANDSHAKE_TIMEOUT,
    then hands the connection to its RelaySMTP."""

    def __init__(self, smtp: RelaySMTP, context: ssl.SSLContext) -> None:
        self.smtp = smtp
        self.context = context

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        smtp = self.smtp
        peer = transport.get_extra_info("peername")
        smtp.client_ip = peer[0] if peer else None
        if smtp.admit() is not None:
            # Over the limit or cooling off (recorded): without TLS there is no way to
            # say so, the connection is closed.
            transport.abort()
            return
        smtp._raw_transport = transport
        waiter: asyncio.Future[None] = smtp.loop.create_future()
        waiter.add_done_callback(self._handshake_done)
        tls = sslproto.SSLProtocol(
            smtp.loop, smtp, self.context, waiter, server_side=True,
            ssl_handshake_timeout=smtp.context.config.tls_handshake_timeout)  # type: ignore[arg-type]
        transport.set_protocol(tls)
        tls.connection_made(transport)

    def _handshake_done(self, waiter: asyncio.Future[None]) -> None:
        smtp = self.smtp
        smtp._raw_transport = None
        error = None if waiter.cancelled() else waiter.exception()
        if error is not None:
            log.info("%s: TLS handshake failed (%s)", smtp.client_ip, error)
        if error is not None or smtp.transport is None:
            # RelaySMTP never saw the connection, so its connection_lost() will not run.
            smtp.release()
