"""RELAY_EGRESS_IPS and RELAY_SPF_INCLUDE: read strictly, a bad entry named and refused."""

from __future__ import annotations

import ipaddress

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from smtpplus.egress import parse_egress_ips, parse_spf_include


def test_addresses_and_networks_are_read():
    assert parse_egress_ips(["203.0.113.7", " 198.51.100.0/28", "2001:db8::25", ""]) == [
        ipaddress.ip_network("203.0.113.7/32"), ipaddress.ip_network("198.51.100.0/28"),
        ipaddress.ip_network("2001:db8::25/128")]


@pytest.mark.parametrize("entry, why", [
    ("203.0.113", "is not an IP address or network"),
    ("smtp.example", "is not an IP address or network"),
    ("203.0.113.7/24", "has host bits set; write the network (203.0.113.0/24)"),
])
def test_a_bad_egress_entry_is_named_and_refused(entry, why):
    with pytest.raises(ImproperlyConfigured) as raised:
        parse_egress_ips(["203.0.113.9", entry])
    assert repr(entry) in str(raised.value) and why in str(raised.value)


@pytest.mark.parametrize("value, domain", [
    ("spf.smarthost.example", "spf.smarthost.example"),
    ("include:SPF.Smarthost.Example.", "spf.smarthost.example"),
    ("", ""),
])
def test_the_spf_include_is_normalised(value, domain):
    assert parse_spf_include(value) == domain


@pytest.mark.parametrize("value", ["localhost", "spf smarthost.example", "a..b.example"])
def test_a_bad_spf_include_is_refused(value):
    with pytest.raises(ImproperlyConfigured, match="is not a domain name"):
        parse_spf_include(value)


def test_the_system_check_reports_bad_relay_egress_settings(settings):
    settings.RELAY_EGRESS_IPS = ["mail.example"]
    settings.RELAY_SPF_INCLUDE = "localhost"
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "smtpplus.E020" in str(raised.value) and "smtpplus.E021" in str(raised.value)
