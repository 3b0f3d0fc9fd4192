"""The product's one resolver, against the suite's real DNS server (Knot)."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command

from smtpplus.dns import lookup_txt, make_resolver, parse_resolvers


def test_a_txt_record_is_found_with_its_strings_joined(dns_server):
    dns_server.set_records("lookup.test", [
        ("_smtpplus", "TXT", '"smtpplus-verification=abc"'),
        ("long", "TXT", '"' + "a" * 255 + '" "' + "b" * 10 + '"'),
    ])
    found = lookup_txt("_smtpplus.lookup.test")
    assert found.status == "found" and found.ran
    assert found.records == ("smtpplus-verification=abc",)
    assert lookup_txt("long.lookup.test").records == ("a" * 255 + "b" * 10,)


def test_a_missing_name_and_a_name_without_txt_are_told_apart(dns_server):
    dns_server.set_records("lookup2.test", [("www", "A", "192.0.2.1")])
    assert lookup_txt("nothing.lookup2.test").status == "nxdomain"
    nodata = lookup_txt("www.lookup2.test")
    assert nodata.status == "nodata" and nodata.ran
    assert "has no TXT record" in nodata.describe()


def test_a_record_change_is_seen_at_the_next_lookup(dns_server):
    dns_server.set_records("lookup3.test", [("@", "TXT", '"one"')])
    assert lookup_txt("lookup3.test").records == ("one",)
    dns_server.set_records("lookup3.test", [("@", "TXT", '"two"')])
    assert lookup_txt("lookup3.test").records == ("two",)


def test_servfail_is_an_error_never_a_missing_record(dns_server):
    dns_server.break_zone("broken.test")
    result = lookup_txt("_smtpplus.broken.test")
    assert result.status == "error" and not result.ran
    assert "SERVFAIL" in result.error
    assert result.describe().startswith("could not look up _smtpplus.broken.test")


def test_a_resolver_that_never_answers_times_out_as_an_error(dns_server, settings):
    settings.SMTPPLUS_DNS_RESOLVERS = [dns_server.silent_address]
    settings.SMTPPLUS_DNS_TIMEOUT = 0.5
    result = lookup_txt("anything.test")
    assert result.status == "error"
    assert "timeout" in result.error


def test_resolvers_are_taken_from_the_setting_with_their_ports(settings):
    settings.SMTPPLUS_DNS_RESOLVERS = ["127.0.0.1:5353", "[::1]:53", "192.0.2.53"]
    resolver = make_resolver()
    assert [(ns.address, ns.port) for ns in resolver.nameservers] == [
        ("127.0.0.1", 5353), ("::1", 53), ("192.0.2.53", 53)]


@pytest.mark.parametrize("entry, why", [
    ("dns.example:53", "is not an IP address"),
    ("127.0.0.1:99999", "is not a port number"),
    ("[::1", "is not [IPv6]:port"),
])
def test_a_bad_resolver_entry_is_named_and_refused(entry, why):
    with pytest.raises(ImproperlyConfigured) as raised:
        parse_resolvers(["127.0.0.1", entry])
    assert entry in str(raised.value) and why in str(raised.value)


def test_the_system_check_reports_a_bad_resolver_setting(settings, capsys):
    settings.SMTPPLUS_DNS_RESOLVERS = ["resolver.example"]
    from django.core.management.base import SystemCheckError

    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "smtpplus.E002" in str(raised.value)
