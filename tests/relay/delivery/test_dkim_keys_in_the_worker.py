"""Which messages the delivery worker signs, and its cache of decrypted keys."""

from __future__ import annotations

import pytest

from accounts.domains.dkim import encrypt_private_key, generate_key
from accounts.models import DkimKey, DkimKeyState, DomainStatus, SendingDomain
from relay.delivery import signing
from relay.delivery.signing import KeyCache, from_domain
from tests.dkim_verifier import verified_domain


def _active_domain(account, name: str, algorithms=("rsa",)) -> SendingDomain:
    domain = verified_domain(account, name)
    for n, algorithm in enumerate(algorithms):
        key = generate_key(algorithm)
        DkimKey.objects.create(
            sending_domain=domain, selector=f"s{n}", algorithm=algorithm,
            private_key_encrypted=encrypt_private_key(key.private_key),
            public_key=key.public_key, state=DkimKeyState.ACTIVE,
        )
    return domain


@pytest.mark.parametrize("header, domain", [
    (b"From: Shop <shop@acme.test>", "acme.test"),
    (b"From: =?utf-8?q?J=C3=B6rg?= <shop@ACME.test>", "acme.test"),
    ("From: Jörg <shop@bücher.test>".encode(), "xn--bcher-kva.test"),
    (b"From: a@acme.test, b@acme.test", "acme.test"),
    (b"From: a@acme.test, b@globex.test", None),  # no one d= aligns with both
    (b"Sender: shop@acme.test", None),
    (b"From: undisclosed", None),
])
def test_the_signing_domain_is_the_from_domain(header, domain):
    assert from_domain(header + b"\r\nTo: bob@example.net\r\n\r\nHi.\r\n") == domain


def test_the_keys_of_an_active_domain_sign_it_and_its_subdomains_only(cast):
    _active_domain(cast.acme, "acme.test", ("rsa", "ed25519"))
    cache = KeyCache()
    keys = cache.keys_for(cast.acme.pk, "acme.test")
    assert [(k.domain, k.algorithm) for k in keys] == [("acme.test", "rsa"), ("acme.test", "ed25519")]
    assert cache.keys_for(cast.acme.pk, "news.eu.acme.test") == keys
    assert cache.keys_for(cast.acme.pk, "notacme.test") == ()
    assert cache.keys_for(cast.globex.pk, "acme.test") == ()  # not Globex's domain
    assert "PRIVATE" not in repr(keys)


def test_pending_retired_and_unverified_keys_do_not_sign(cast):
    domain = _active_domain(cast.acme, "acme.test")
    DkimKey.objects.filter(sending_domain=domain).update(state=DkimKeyState.PENDING)
    assert KeyCache().keys_for(cast.acme.pk, "acme.test") == ()
    DkimKey.objects.filter(sending_domain=domain).update(state=DkimKeyState.ACTIVE)
    SendingDomain.objects.filter(pk=domain.pk).update(status=DomainStatus.UNVERIFIED)
    assert KeyCache().keys_for(cast.acme.pk, "acme.test") == ()


def test_keys_are_read_and_decrypted_once_per_cache_period(cast, django_assert_num_queries):
    _active_domain(cast.acme, "acme.test")
    cache = KeyCache(seconds=60)
    with django_assert_num_queries(2):  # the domains, and their keys
        cache.keys_for(cast.acme.pk, "acme.test")
    DkimKey.objects.update(state=DkimKeyState.RETIRED)
    with django_assert_num_queries(0):
        assert cache.keys_for(cast.acme.pk, "acme.test")
    cache.seconds = 0  # the period is over: the rotation is seen
    assert cache.keys_for(cast.acme.pk, "acme.test") == ()


def test_a_key_no_credential_key_decrypts_is_skipped_and_the_message_goes_unsigned(cast, caplog):
    domain = _active_domain(cast.acme, "acme.test")
    DkimKey.objects.filter(sending_domain=domain).update(private_key_encrypted="gAAAAAbroken")
    raw = b"From: shop@acme.test\r\nTo: bob@example.net\r\n\r\nHi.\r\n"
    assert signing.signer_for(cast.acme.pk, raw) is None
    assert "cannot be decrypted" in caplog.text and "gAAAA" not in caplog.text
