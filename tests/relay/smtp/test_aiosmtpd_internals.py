"""The private parts of aiosmtpd (and of asyncio's TLS layer) that RelaySMTP, its
handshakes and its handler rely on. aiosmtpd is pinned below its next minor release in
pyproject.toml; an upgrade that moves one of these names fails here, loudly, rather than
in a client's session."""

from __future__ import annotations

import asyncio
import inspect
from asyncio import sslproto

from aiosmtpd import smtp as aiosmtpd_smtp


def test_the_aiosmtpd_internals_the_relay_relies_on_still_exist():
    smtp = aiosmtpd_smtp.SMTP
    for name in ("_handle_client", "_getaddr", "_create_session", "_reset_timeout",
                 "_timeout_cb", "challenge_auth", "smtp_STARTTLS", "smtp_DATA", "smtp_EHLO",
                 "handle_exception", "command_size_limit", "line_length_limit"):
        assert hasattr(smtp, name), name
    init = inspect.getsource(smtp.__init__)
    for name in ("_timeout_duration", "_timeout_handle", "_tls_protocol", "_auth_require_tls",
                 "_original_transport", "command_size_limits.clear()"):
        assert name in init, name
    assert "self._reader = reader" in inspect.getsource(smtp._cb_client_connected)
    # The replies RelaySMTP rewrites or extends.
    source = inspect.getsource(smtp)
    for text in ("500 Line too long (see RFC5321 4.5.3.1.6)", "552 Error: Too much mail data",
                 "'250 HELP'", "self.command_size_limits['MAIL'] +="):
        assert text in source, text
    assert issubclass(aiosmtpd_smtp.TLSSetupException, Exception)
    # relay.smtp.dsn_envelope's envelope: every transaction's comes from _create_envelope().
    assert "self.envelope = self._create_envelope()" in source
    # The reader's line limit, and the TLS layer as aiosmtpd builds it for STARTTLS.
    loop = asyncio.new_event_loop()
    try:
        assert asyncio.StreamReader(limit=10, loop=loop)._limit == 10
    finally:
        loop.close()
    assert "_stream_reader" in dir(asyncio.StreamReaderProtocol)
    assert "ssl_handshake_timeout" in inspect.signature(sslproto.SSLProtocol).parameters
    assert "self._app_transport = " in inspect.getsource(sslproto.SSLProtocol)


def test_every_private_name_the_relay_uses_is_still_there():
    smtp = aiosmtpd_smtp.SMTP
    # Module-level names (relay.smtp.handler, relay.smtp.protocol, relay.smtp.tls).
    for name in ("MISSING", "_Missing", "AuthResult", "Envelope", "Session", "TLSSetupException"):
        assert hasattr(aiosmtpd_smtp, name), name
    # Methods RelaySMTP overrides or calls.
    for name in ("_handle_client", "_getaddr", "_create_session", "_create_envelope",
                 "_reset_timeout", "_timeout_cb", "_cb_client_connected", "challenge_auth", "push",
                 "connection_made", "connection_lost", "data_received", "handle_exception",
                 "smtp_HELO", "smtp_EHLO", "smtp_STARTTLS", "smtp_AUTH", "smtp_MAIL",
                 "smtp_RCPT", "smtp_DATA", "command_size_limit", "line_length_limit",
                 "local_part_limit"):
        assert hasattr(smtp, name), name
    # Attributes RelaySMTP reads or replaces, set up by aiosmtpd's __init__.
    init = inspect.getsource(smtp.__init__)
    for name in ("self._smtp_methods", "self._timeout_duration", "self._timeout_handle",
                 "self._tls_protocol", "self._original_transport", "self._auth_require_tls",
                 "self.tls_context", "self.command_size_limits"):
        assert name in init, name
    # The command table is read with .get() (relay.smtp.revocation.GuardedCommands), and
    # built from dir() (RelaySMTP.__dir__, RelayHandler.__dir__).
    source = inspect.getsource(smtp)
    assert "self._smtp_methods.get(command)" in source
    assert "for m in dir(self)" in source
    assert "inspect.getmembers(obj)" in source
    # The session's login_data property is replaced by RelaySession (its warning).
    assert "self._login_data = None" in inspect.getsource(aiosmtpd_smtp.Session.__init__)
    assert isinstance(inspect.getattr_static(aiosmtpd_smtp.Session, "login_data"), property)
    # The envelope fields the handler reads and fills.
    envelope = aiosmtpd_smtp.Envelope()
    for name in ("mail_from", "mail_options", "rcpt_tos", "rcpt_options", "smtp_utf8",
                 "original_content"):
        assert hasattr(envelope, name), name
    session = aiosmtpd_smtp.Session(asyncio.new_event_loop())
    try:
        for name in ("authenticated", "host_name", "extended_smtp"):
            assert hasattr(session, name), name
    finally:
        session.loop.close()
