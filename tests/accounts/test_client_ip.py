"""The client address the console throttles logins by and writes into the audit log."""

from __future__ import annotations

from django.test import RequestFactory

from accounts.tenancy import client_ip


def _request(**meta):
    return RequestFactory().get("/", **meta)


def test_without_a_proxy_it_is_the_peer_address(settings):
    settings.BEHIND_TLS_PROXY = False
    request = _request(REMOTE_ADDR="198.51.100.7", HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert client_ip(request) == "198.51.100.7"


def test_behind_the_proxy_it_is_the_last_forwarded_for_entry(settings):
    settings.BEHIND_TLS_PROXY = True
    request = _request(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="192.0.2.1, 203.0.113.5")
    assert client_ip(request) == "203.0.113.5"
    request = _request(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="2001:db8::7")
    assert client_ip(request) == "2001:db8::7"


def test_behind_the_proxy_a_missing_or_garbled_header_falls_back_to_the_peer(settings):
    settings.BEHIND_TLS_PROXY = True
    assert client_ip(_request(REMOTE_ADDR="127.0.0.1")) == "127.0.0.1"
    request = _request(REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.5, unknown")
    assert client_ip(request) == "127.0.0.1"
