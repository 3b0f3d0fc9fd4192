"""Mail delivered by the relay is DKIM-signed for its From: domain, and the signatures
verify with an independent implementation (Perl's Mail::DKIM) against the keys served by
the real DNS server — whatever the upstream supports.

Every message here goes in through the running relay over SMTP, is delivered by the
worker to the recording upstream, and is verified as that upstream received it.
"""

from __future__ import annotations

import smtplib
from email.message import EmailMessage

import dkim
import pytest

from accounts.actions.dkim_keys import ensure_keys, refresh_keys, start_rotation
from accounts.models import DkimKey, DkimKeyState, DomainStatus, SendingDomain
from relay.delivery import signing
from relay.delivery.worker import deliver_due
from tests import dkim_verifier
from tests.dkim_verifier import publish, verified_domain

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _fresh_key_cache():
    signing.keys.clear()
    yield
    signing.keys.clear()


@pytest.fixture
def acme_keys(cast, dns_server) -> list[DkimKey]:
    """acme.test: a verified sending domain of Acme whose key is published and active."""
    domain = verified_domain(cast.acme, "acme.test", include_subdomains=True)
    keys = ensure_keys(domain)
    publish(dns_server, "acme.test", keys)
    refresh_keys(domain)
    for key in keys:
        key.refresh_from_db()
    assert all(k.state == DkimKeyState.ACTIVE for k in keys)
    return keys


def send(relay, cast, raw: bytes, sender: str = "shop@acme.test", utf8: bool = False) -> None:
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        smtp.sendmail(sender, ["bob@example.net"], raw,
                      mail_options=["SMTPUTF8"] if utf8 else [])


def delivered(relay, cast, upstream, raw: bytes, **kwargs) -> bytes:
    send(relay, cast, raw, **kwargs)
    deliver_due(upstream=upstream.url())
    [got] = upstream.received
    upstream.received.clear()
    return got.data


def verified(data: bytes, dns_server, selector: str | None = None) -> dkim_verifier.Verdict:
    verdict = dkim_verifier.verify(data, dns_server.address)
    assert verdict.result == "pass", verdict
    assert verdict.passed("acme.test", selector), verdict
    return verdict


def test_plain_ascii_mail_is_signed_for_its_from_domain(relay, cast, upstream, dns_server, acme_keys):
    data = delivered(relay, cast, upstream, (
        b"From: Shop <shop@acme.test>\r\nTo: bob@example.net\r\nSubject: Your order\r\n"
        b"Date: Thu, 03 Dec 2026 07:00:00 +0000\r\nMessage-ID: <1@acme.test>\r\n\r\n"
        b"Thank you for your order.\r\n"))
    assert data.startswith(b"DKIM-Signature:")
    verified(data, dns_server, acme_keys[0].selector)


def test_the_signature_is_relaxed_and_oversigns_from_and_subject_but_not_sender(
    relay, cast, upstream, dns_server, acme_keys
):
    data = delivered(relay, cast, upstream, (
        b"From: shop@acme.test\r\nSender: shop@acme.test\r\nTo: bob@example.net\r\n"
        b"Subject: Hello\r\n\r\nHi.\r\n"))
    tags = dkim.util.parse_tag_value(
        b" ".join(data.split(b"\r\n\r\n")[0].split(b"\r\n")[:8]).split(b":", 1)[1].split(b"From:")[0])
    assert tags[b"c"] == b"relaxed/relaxed" and tags[b"d"] == b"acme.test"
    signed = [h.strip().lower() for h in b"".join(tags[b"h"].split()).split(b":")]
    assert signed.count(b"from") == 2 and signed.count(b"subject") == 2
    assert signed.count(b"sender") == 1 and signed.count(b"to") == 1
    assert b"received" not in signed
    verified(data, dns_server)
    # A second From: added on the way breaks it: that is what oversigning is for.
    tampered = data.replace(b"\r\nTo:", b"\r\nFrom: ceo@acme.test\r\nTo:", 1)
    assert dkim_verifier.verify(tampered, dns_server.address).result != "pass"


def test_an_8bit_body_is_signed_as_sent(relay, cast, upstream, dns_server, acme_keys):
    data = delivered(relay, cast, upstream, (
        "From: shop@acme.test\r\nTo: bob@example.net\r\nSubject: Greetings\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln — 20 €.\r\n").encode())
    assert "Grüße".encode() in data
    verified(data, dns_server)


def test_utf8_headers_through_an_upstream_without_smtputf8_are_signed_after_the_downgrade(
    relay, cast, upstream, dns_server, acme_keys
):
    upstream.smtputf8 = False
    data = delivered(relay, cast, upstream, (
        "From: Jörg Müller <shop@acme.test>\r\nTo: bob@example.net\r\n"
        "Subject: I love you ♥\r\n\r\nHello.\r\n").encode(), utf8=True)
    header = data.split(b"\r\n\r\n")[0]
    assert header.isascii() and b"=?utf-8?" in header
    verified(data, dns_server)


def test_the_same_utf8_message_to_an_upstream_with_smtputf8_is_signed_as_received(
    relay, cast, upstream, dns_server, acme_keys
):
    data = delivered(relay, cast, upstream, (
        "From: Jörg Müller <shop@acme.test>\r\nTo: bob@example.net\r\n"
        "Subject: I love you ♥\r\n\r\nHello.\r\n").encode(), utf8=True)
    assert "Subject: I love you ♥".encode() in data
    verified(data, dns_server)


def test_multipart_mail_with_attachments_is_signed(relay, cast, upstream, dns_server, acme_keys):
    message = EmailMessage()
    message["From"] = "Shop <shop@acme.test>"
    message["To"] = "bob@example.net"
    message["Subject"] = "Your invoice"
    message.set_content("Your invoice is attached.\n")
    message.add_alternative("<p>Your invoice is <b>attached</b>.</p>\n", subtype="html")
    message.add_attachment(bytes(range(256)) * 40, maintype="application", subtype="pdf",
                           filename="invoice.pdf")
    message.add_attachment("Zeile 1: Grüße\n", filename="notes.txt")
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n"))
    data = delivered(relay, cast, upstream, raw)
    assert b"multipart/mixed" in data and b'filename="invoice.pdf"' in data
    verified(data, dns_server)


def test_after_a_rotation_mail_is_signed_with_the_new_key_and_the_old_signature_still_verifies(
    relay, cast, upstream, dns_server, acme_keys
):
    raw = b"From: shop@acme.test\r\nTo: bob@example.net\r\nSubject: Before\r\n\r\nOne.\r\n"
    before = delivered(relay, cast, upstream, raw)
    [old] = acme_keys
    domain = old.sending_domain
    [new] = start_rotation(domain)
    publish(dns_server, "acme.test", [old, new])
    refresh_keys(domain)
    signing.keys.clear()  # as when the worker's cache expires

    after = delivered(relay, cast, upstream, raw.replace(b"Before", b"After"))

    verified(after, dns_server, new.selector)
    assert b"s=" + old.selector.encode() not in after
    # The old key is retiring: its record stays published, mail signed with it verifies.
    verified(before, dns_server, old.selector)


def test_mail_from_a_subdomain_is_signed_with_the_sending_domain(
    relay, cast, upstream, dns_server, acme_keys
):
    cast.acme_smtp.authorized_domains.create(domain="news.acme.test")
    data = delivered(relay, cast, upstream, (
        b"From: letters@news.acme.test\r\nTo: bob@example.net\r\nSubject: News\r\n\r\nHi.\r\n"),
        sender="letters@news.acme.test")
    assert b"d=acme.test;" in data
    verified(data, dns_server)


def test_mail_queued_before_its_domain_lapsed_goes_out_unsigned(
    relay, cast, upstream, dns_server, acme_keys
):
    send(relay, cast, b"From: shop@acme.test\r\nTo: bob@example.net\r\nSubject: x\r\n\r\nHi.\r\n")
    SendingDomain.objects.filter(pk=acme_keys[0].sending_domain_id).update(
        status=DomainStatus.LAPSED)
    signing.keys.clear()  # as when the worker's cache expires

    deliver_due(upstream=upstream.url())

    [got] = upstream.received
    assert b"DKIM-Signature" not in got.data


def test_a_second_ed25519_signature_verifies_beside_the_rsa_one(
    relay, cast, upstream, dns_server, acme_keys, settings
):
    settings.SMTPPLUS_DKIM_ED25519 = True
    domain = acme_keys[0].sending_domain
    [ed] = ensure_keys(domain)
    publish(dns_server, "acme.test", [*acme_keys, ed])
    refresh_keys(domain)
    signing.keys.clear()

    data = delivered(relay, cast, upstream,
                     b"From: shop@acme.test\r\nTo: bob@example.net\r\nSubject: Two\r\n\r\nHi.\r\n")

    verdict = verified(data, dns_server, acme_keys[0].selector)  # Mail::DKIM: the RSA one
    assert {s.algorithm for s in verdict.signatures} == {"rsa-sha256", "ed25519-sha256"}

    # This Mail::DKIM has no Ed25519 (RFC 8463): mailauth checks both, with the keys from DNS.
    results = {(s.selector, s.result) for s in dkim_verifier.mailauth_verify(data, dns_server.address)}
    assert results == {(acme_keys[0].selector, "pass"), (ed.selector, "pass")}
    tampered = data.replace(b"Hi.", b"Ho.")
    assert all(s.result != "pass" for s in
               dkim_verifier.mailauth_verify(tampered, dns_server.address))


def test_direct_mx_delivery_to_two_domains_is_signed_for_each(
    relay, cast, upstream, dns_server, acme_keys
):
    for zone in ("example.net", "example.org"):
        dns_server.set_records(zone, [("@", "MX", f"10 mx.{zone}."), ("mx", "A", "127.0.0.1")])
    raw = (b"From: shop@acme.test\r\nTo: bob@example.net, eve@example.org\r\n"
           b"Subject: Both\r\n\r\nHi.\r\n")
    with smtplib.SMTP(relay.host, relay.port, timeout=10) as smtp:
        smtp.login(cast.acme_smtp.username, cast.acme_smtp_password)
        smtp.sendmail("shop@acme.test", ["bob@example.net", "eve@example.org"], raw)

    deliver_due(upstream=f"mx?port={upstream.port}")

    assert sorted(r for got in upstream.received for r in got.rcpt_tos) == [
        "bob@example.net", "eve@example.org"]
    for got in upstream.received:
        assert got.data.count(b"DKIM-Signature:") == 1
        verified(got.data, dns_server)


def test_a_large_message_is_signed_too(relay, cast, upstream, dns_server, acme_keys):
    message = EmailMessage()
    message["From"] = "shop@acme.test"
    message["To"] = "bob@example.net"
    message["Subject"] = "Big"
    message.set_content("Attached.\n")
    message.add_attachment(bytes(range(256)) * 1600, maintype="application", subtype="zip",
                           filename="big.zip")  # 400 KB: signed off the event loop
    data = delivered(relay, cast, upstream,
                     message.as_bytes(policy=message.policy.clone(linesep="\r\n")))
    assert len(data) > 400_000
    verified(data, dns_server)


def test_mail_delivered_to_a_maildir_is_signed(relay, cast, dns_server, acme_keys, tmp_path):
    send(relay, cast, b"From: shop@acme.test\r\nTo: bob@example.net\r\nSubject: Dev\r\n\r\nHi.\r\n")
    assert deliver_due(upstream=f"maildir:{tmp_path / 'mail'}")["delivered"] == 1
    [path] = (tmp_path / "mail" / "new").iterdir()
    verified(path.read_bytes(), dns_server)


def test_no_key_material_reaches_the_logs_even_at_debug_level(
    relay, cast, upstream, dns_server, acme_keys, caplog
):
    from accounts.domains.dkim import decrypt_private_key

    caplog.set_level("DEBUG")
    data = delivered(relay, cast, upstream,
                     b"From: shop@acme.test\r\nTo: bob@example.net\r\nSubject: Log\r\n\r\nHi.\r\n")
    verified(data, dns_server)
    private = decrypt_private_key(acme_keys[0].private_key_encrypted).decode()
    body = "".join(private.splitlines()[1:-1])
    assert caplog.records  # the delivery was logged…
    assert body[:40] not in caplog.text and "PRIVATE KEY" not in caplog.text  # …not the key
    assert acme_keys[0].private_key_encrypted[:40] not in caplog.text
