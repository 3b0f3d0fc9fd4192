import pytest

from accounts.senders import can_send_as
from tests.senders import authorize, authorize_email


@pytest.fixture
def shop(cast):
    user = cast.acme_smtp
    user.authorized_domains.all().delete()
    authorize(user, "example.com")
    authorize(user, "corp.test", include_subdomains=True)
    authorize(user, "xn--bcher-kva.example")
    authorize_email(user, "Ann@other.test")
    return user


@pytest.mark.parametrize(
    "address",
    [
        "info@example.com",
        "INFO@EXAMPLE.COM",
        "info@example.com.",
        "ann@other.test",
        "ANN@Other.Test",
        "x@corp.test",
        "x@mail.corp.test",
        "x@bücher.example",
        "x@xn--bcher-kva.example",
    ],
)
def test_it_allows_authorized_senders(shop, address):
    decision = can_send_as(shop, address)
    assert decision.allowed, decision.reason


@pytest.mark.parametrize(
    "address",
    [
        "info@example.com.evil.net",
        "info@evil-example.com",
        '"example.com"@evil.net',
        "example.com@evil.net",
        "info@shop.example.com",  # subdomains not opted in
        "bob@other.test",
        "info@corp.test.evil.net",
        "x@notcorp.test",
        "info@example.com\r\nx@evil.net",
        "info@example.com\x00",
        "",
        "no-at-sign",
    ],
)
def test_it_rejects_look_alikes_and_unlisted_senders(shop, address):
    decision = can_send_as(shop, address)
    assert not decision.allowed
    assert decision.reason


def test_it_says_which_rule_allowed_the_sender(shop):
    assert "domain example.com" in can_send_as(shop, "a@example.com").reason
    assert "address ann@other.test" in can_send_as(shop, "ann@other.test").reason.lower()
    assert "subdomains" in can_send_as(shop, "a@x.corp.test").reason


def test_a_user_without_authorized_senders_cannot_send(cast):
    cast.acme_smtp.authorized_domains.all().delete()
    decision = can_send_as(cast.acme_smtp, "a@acme.test")
    assert not decision.allowed
    assert "no authorized senders" in decision.reason
