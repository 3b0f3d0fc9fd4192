"""Protocol conformance over real SMTP: AUTH (RFC 4954, 4616), MAIL/RCPT paths, the
advertised extensions, DATA timeouts, TLS, and quiet logs for what clients normally do."""

from __future__ import annotations

import base64
import logging
import re
import smtplib
import socket
import ssl
import time

import pytest

from relay.models import EventKind, Message, RelayEvent
from relay.smtp.tls import self_signed_pem
from tests.smtp_relay import dialog, message


def b64(text: str) -> bytes:
    return base64.b64encode(text.encode())


def plain(cast, authzid: str = "") -> bytes:
    return b64(f"{authzid}\0{cast.acme_smtp.username}\0{cast.acme_smtp_password}")


def login_lines(cast) -> list[bytes]:
    return [b"EHLO client.test", b"AUTH PLAIN " + plain(cast)]


def errors_logged(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.fixture
def cert_files(tmp_path):
    cert_pem, key_pem = self_signed_pem(["relay.test", "127.0.0.1"])
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(cert_pem)
    key.write_bytes(key_pem)
    return cert, key


def tls_settings(cert_files, **more):
    cert, key = cert_files
    return {"RELAY_TLS_CERT": str(cert), "RELAY_TLS_KEY": str(key),
            "RELAY_LISTEN_TLS": "127.0.0.1:0", **more}


def client_context(cert_files) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert_files[0]))


# --- MAIL FROM AUTH= (RFC 4954 section 5) -----------------------------------------------
def test_it_accepts_the_auth_parameter_of_mail_from_without_changing_who_sends(relay, cast):
    replies = dialog(relay.host, relay.port, login_lines(cast) + [
        b"MAIL FROM:<shop@acme.test> AUTH=<>", b"RSET",
        b"MAIL FROM:<shop@acme.test> SIZE=100 AUTH=crm+40globex.test",
        b"RCPT TO:<a@example.net>", b"DATA", message().rstrip(b"\r\n") + b"\r\n.",
    ])
    assert replies[3] == "250 2.1.0 Ok"
    assert replies[5] == "250 2.1.0 Ok"
    assert replies[8].startswith("250 2.0.0 Ok: queued as ")
    stored = Message.objects.get()
    assert stored.smtp_user == cast.acme_smtp
    assert stored.envelope_from == "shop@acme.test"


def test_a_claimed_submitter_does_not_authorize_a_sender(relay, cast):
    replies = dialog(relay.host, relay.port, login_lines(cast) + [
        b"MAIL FROM:<crm@globex.test> AUTH=crm@globex.test",
    ])
    assert replies[3].startswith("550 5.7.1 Sender <crm@globex.test> is not authorized")


@pytest.mark.parametrize("param", [b"AUTH=", b"AUTH=a=b", b"AUTH=<> AUTH=<>", b"AUTH=a+zz"])
def test_it_refuses_a_malformed_auth_parameter(relay, cast, param):
    replies = dialog(relay.host, relay.port, login_lines(cast) + [
        b"MAIL FROM:<shop@acme.test> " + param,
    ])
    assert replies[3].startswith("501 5.5.4")


# --- AUTH lines, responses and identities -----------------------------------------------
def test_it_reads_auth_lines_up_to_12288_octets(relay, cast):
    long_blob = base64.b64encode(b"x" * 9000)  # 12,000 octets, not a PLAIN value
    replies = dialog(relay.host, relay.port, [
        b"EHLO client.test", b"AUTH PLAIN " + long_blob, b"AUTH PLAIN", long_blob,
    ])
    assert replies[2] == "501 5.5.2 Cannot split the AUTH PLAIN value"
    assert replies[3] == "334 "
    assert replies[4] == "501 5.5.2 Cannot split the AUTH PLAIN value"


def test_an_auth_response_line_over_the_limit_is_refused_once_and_the_session_stays_in_sync(
    relay, cast, caplog,
):
    replies = dialog(relay.host, relay.port, [
        b"EHLO client.test", b"AUTH LOGIN", b"A" * 2_000_000, b"NOOP",
        b"AUTH PLAIN " + b"A" * 13_000, b"NOOP", b"AUTH PLAIN " + plain(cast),
    ])
    assert replies[2] == "334 VXNlcm5hbWU6"
    assert replies[3] == "500 5.5.6 Authentication Exchange line is too long"
    assert replies[4] == "250 2.0.0 OK"
    assert replies[5].startswith("500 ")
    assert replies[6] == "250 2.0.0 OK"
    assert replies[7] == "235 2.7.0 Authentication successful"
    assert errors_logged(caplog) == []


def test_auth_plain_with_an_equals_sign_is_an_empty_response(relay):
    replies = dialog(relay.host, relay.port, [b"EHLO c", b"AUTH PLAIN ="])
    assert replies[2].startswith("501 5.5.2 Empty AUTH PLAIN response")


def test_an_empty_response_to_a_challenge_may_be_an_equals_sign(relay, cast):
    replies = dialog(relay.host, relay.port, [b"EHLO c", b"AUTH LOGIN", b"=", b"="])
    assert replies[2:4] == ["334 VXNlcm5hbWU6", "334 UGFzc3dvcmQ6"]
    assert replies[4] == "535 5.7.8 Authentication credentials invalid"


def test_it_refuses_an_authorization_identity_other_than_the_user(relay, cast):
    other = cast.globex_smtp.username
    replies = dialog(relay.host, relay.port, [
        b"EHLO c", b"AUTH PLAIN " + plain(cast, authzid=other),
        b"AUTH PLAIN " + plain(cast, authzid=cast.acme_smtp.username),
    ])
    assert replies[2] == "535 5.7.8 Authentication credentials invalid"
    assert replies[3] == "235 2.7.0 Authentication successful"
    relay.flush()
    event = RelayEvent.objects.get(kind=EventKind.AUTH_FAILED)
    assert event.reason == "authorization identity differs from the user name"


def test_mechanism_names_are_case_insensitive(relay, cast):
    replies = dialog(relay.host, relay.port, [
        b"EHLO c", b"AUTH plain " + plain(cast), b"RSET",
    ])
    assert replies[2] == "235 2.7.0 Authentication successful"
    replies = dialog(relay.host, relay.port, [
        b"EHLO c", b"auth Login", b64(cast.acme_smtp.username), b64(cast.acme_smtp_password),
    ])
    assert replies[4] == "235 2.7.0 Authentication successful"


# --- paths ------------------------------------------------------------------------------
def test_it_refuses_a_recipient_path_without_its_closing_bracket(relay, cast):
    replies = dialog(relay.host, relay.port, login_lines(cast) + [
        b"MAIL FROM:<shop@acme.test>", b"RCPT TO:<x@example.net", b"RCPT TO:<x@example.net",
        b'RCPT TO:<"a b"@example.net',
    ])
    assert replies[4].startswith("501 5.1.3")
    assert replies[6].startswith("501 5.1.3")


def test_it_refuses_a_sender_path_without_its_closing_bracket(relay, cast):
    replies = dialog(relay.host, relay.port, login_lines(cast) + [
        b"MAIL FROM:<shop@acme.test", b"MAIL FROM:<shop@acme.test SIZE=10",
    ])
    assert replies[3].startswith("501 5.1.7")
    assert replies[4].startswith("501 5.1.7")


# --- extensions and enhanced status codes -----------------------------------------------
ENHANCED = re.compile(r"\A[245]\d\d[ -][245]\.\d{1,3}\.\d{1,3} ")


def test_it_advertises_pipelining_and_enhanced_status_codes(relay):
    ehlo = dialog(relay.host, relay.port, [b"EHLO c"])[1].splitlines()
    assert "250-PIPELINING" in ehlo and "250-ENHANCEDSTATUSCODES" in ehlo
    assert ehlo[-1] == "250 HELP"


def test_every_reply_after_ehlo_carries_an_enhanced_status_code(relay, cast):
    replies = dialog(relay.host, relay.port, [
        b"EHLO c", b"NOOP", b"HELP", b"VRFY <a@b.c>", b"MAIL FROM:<shop@acme.test>",
        b"RCPT TO:<a@b.c>", b"DATA", b"BOGUS", b"", b"AUTH PLAIN " + plain(cast),
        b"AUTH PLAIN x", b"RCPT TO:<a@b.c>", b"MAIL FROM:<shop@acme.test> FOO=1",
        b"MAIL FROM:<shop@acme.test>", b"MAIL FROM:<shop@acme.test>", b"DATA",
        b"RCPT TO:<a@b.c> NOTIFY=NEVER", b"STARTTLS", b"RSET", b"QUIT",
    ])
    for reply in replies[2:]:
        for line in reply.splitlines():
            assert ENHANCED.match(line), line


def test_pipelined_commands_get_their_replies_in_order(relay, cast):
    batch = b"".join(line + b"\r\n" for line in [
        b"MAIL FROM:<shop@acme.test>", b"RCPT TO:<a@example.net>", b"RCPT TO:<b@example.net>",
        b"DATA"])
    with socket.create_connection((relay.host, relay.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        for line in login_lines(cast):
            sock.sendall(line + b"\r\n")
            while reader.readline()[3:4] == b"-":
                pass
        sock.sendall(batch)
        codes = [reader.readline()[:3] for _ in range(4)]
        assert codes == [b"250", b"250", b"250", b"354"]
        sock.sendall(message() + b".\r\n")
        assert reader.readline().startswith(b"250 2.0.0 Ok: queued as ")
    assert Message.objects.get().recipients.count() == 2


# --- DATA -------------------------------------------------------------------------------
@pytest.mark.parametrize("relay", [{"RELAY_IDLE_TIMEOUT": 1}], indirect=True)
def test_a_slow_but_steady_upload_is_not_cut_off(relay, cast):
    with socket.create_connection((relay.host, relay.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        for line in [*login_lines(cast), b"MAIL FROM:<shop@acme.test>",
                     b"RCPT TO:<a@example.net>", b"DATA"]:
            sock.sendall(line + b"\r\n")
            while reader.readline()[3:4] == b"-":
                pass
        sock.sendall(message(body=b""))
        # Longer in all than the idle timeout, never idle for as long.
        for _ in range(10):
            time.sleep(0.25)
            sock.sendall(b"line\r\n")
        sock.sendall(b".\r\n")
        assert reader.readline().startswith(b"250 2.0.0 Ok: queued as ")


@pytest.mark.parametrize("relay", [{"RELAY_IDLE_TIMEOUT": 1}], indirect=True)
def test_a_client_that_stalls_in_data_is_cut_off(relay, cast):
    with socket.create_connection((relay.host, relay.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        for line in [*login_lines(cast), b"MAIL FROM:<shop@acme.test>",
                     b"RCPT TO:<a@example.net>", b"DATA"]:
            sock.sendall(line + b"\r\n")
            while reader.readline()[3:4] == b"-":
                pass
        sock.sendall(message(body=b"half a mess"))
        assert reader.read() == b""  # closed by the relay, long before the socket timeout
    assert Message.objects.count() == 0


def test_a_line_over_998_characters_is_refused_and_recorded(relay, cast):
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        smtp.mail("shop@acme.test")
        smtp.rcpt("a@example.net")
        code, text = smtp.data(message(body=b"x" * 1200 + b"\r\n"))
        assert code == 500
        assert b"over 998 characters" in text
        assert smtp.sendmail("shop@acme.test", ["a@example.net"], message()) == {}
    relay.flush()
    event = RelayEvent.objects.get(kind=EventKind.BAD_MESSAGE)
    assert event.smtp_user == cast.acme_smtp
    assert event.address == "shop@acme.test"
    assert event.reason == "a line of the message is over 998 characters (RFC 5322 2.1.1)"
    assert event.reply.startswith("500 ")


# --- TLS --------------------------------------------------------------------------------
def test_starttls_inside_tls_is_refused(start_relay, cast, cert_files, caplog):
    relay = start_relay(**tls_settings(cert_files))
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.starttls(context=client_context(cert_files))
        smtp.ehlo()
        assert smtp.docmd("STARTTLS") == (503, b"5.5.1 TLS already active")
        assert smtp.noop()[0] == 250
    assert relay.tls_port is not None
    with smtplib.SMTP_SSL(relay.host, relay.tls_port, timeout=10,
                          context=client_context(cert_files)) as smtp:
        smtp.ehlo()
        assert smtp.docmd("STARTTLS") == (503, b"5.5.1 TLS already active")
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
    assert errors_logged(caplog) == []


def test_implicit_tls_connections_count_against_the_limit_before_their_handshake(
    start_relay, cast, cert_files,
):
    relay = start_relay(**tls_settings(cert_files, RELAY_MAX_CONNECTIONS_PER_IP=2))
    assert relay.tls_port is not None
    idle = [socket.create_connection((relay.host, relay.tls_port), timeout=10)
            for _ in range(2)]
    try:
        time.sleep(0.2)  # both accepted by the relay
        with pytest.raises((ssl.SSLError, ConnectionError, smtplib.SMTPServerDisconnected)):
            smtplib.SMTP_SSL(relay.host, relay.tls_port, timeout=10,
                             context=client_context(cert_files))
    finally:
        for sock in idle:
            sock.close()
    relay.flush()
    assert RelayEvent.objects.filter(kind=EventKind.CONNECTION_LIMIT,
                                     port=relay.tls_port).exists()


def test_an_implicit_tls_connection_without_a_handshake_is_closed_and_no_longer_counted(
    start_relay, cast, cert_files,
):
    relay = start_relay(**tls_settings(cert_files, RELAY_MAX_CONNECTIONS_PER_IP=1,
                                       RELAY_TLS_HANDSHAKE_TIMEOUT=0.5))
    assert relay.tls_port is not None
    with socket.create_connection((relay.host, relay.tls_port), timeout=10) as sock:
        assert sock.recv(100) == b""  # closed by the relay, long before the socket timeout
    with smtplib.SMTP_SSL(relay.host, relay.tls_port, timeout=10,
                          context=client_context(cert_files)) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)


def test_a_starttls_handshake_that_never_comes_is_closed(start_relay, cast, cert_files):
    relay = start_relay(**tls_settings(cert_files, RELAY_MAX_CONNECTIONS_PER_IP=1,
                                       RELAY_TLS_HANDSHAKE_TIMEOUT=0.5))
    with socket.create_connection((relay.host, relay.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(b"STARTTLS\r\n")
        assert reader.readline() == b"220 2.0.0 Ready to start TLS\r\n"
        assert reader.read() == b""
    assert dialog(relay.host, relay.port, [b"QUIT"])[0].startswith("220 ")


def test_a_client_that_refuses_the_certificate_leaves_one_info_line(
    start_relay, cert_files, caplog,
):
    relay = start_relay(**tls_settings(cert_files))
    caplog.set_level(logging.INFO, logger="relay")
    untrusting = ssl.create_default_context()  # does not know the relay's certificate
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp, \
            pytest.raises(ssl.SSLCertVerificationError):
        smtp.starttls(context=untrusting)
    assert relay.tls_port is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(relay.host, relay.tls_port, timeout=10, context=untrusting)
    relay.flush()
    assert errors_logged(caplog) == []
    failed = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(failed) == 2 and all(r.levelno == logging.INFO for r in failed)
    assert not any(r.exc_info for r in caplog.records)


def test_a_client_that_hangs_up_mid_reply_leaves_no_traceback(relay, cast, caplog):
    for _ in range(5):
        sock = socket.create_connection((relay.host, relay.port), timeout=10)
        sock.recv(100)
        sock.sendall(b"EHLO c\r\n" + b"HELP\r\n" * 2000)
        # Reset at once: the relay is still writing its replies.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.close()
    time.sleep(0.5)
    quit_reply = dialog(relay.host, relay.port, [b"QUIT"])[1]
    assert errors_logged(caplog) == []
    assert not any(r.exc_info for r in caplog.records)
    assert quit_reply.startswith("221 ")

