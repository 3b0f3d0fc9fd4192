"""The SPF check of sending domains, against records served by the real DNS server (Knot).

Every verdict the check gives has a test here; each zone is its own, so the tests do not
see each other's records.
"""

from __future__ import annotations

import pytest

from accounts.domains.spfhealth import spf_findings
from accounts.domains.spfrecord import check_address


def codes(findings):
    return [f.code for f in findings]


def one(findings, code):
    found = [f for f in findings if f.code == code]
    assert len(found) == 1, [(f.code, f.title, f.explanation) for f in findings]
    return found[0]


@pytest.fixture
def egress(settings):
    settings.RELAY_EGRESS_IPS = ["203.0.113.7"]
    settings.RELAY_SPF_INCLUDE = ""
    return settings


def test_a_domain_without_spf_gets_the_record_to_publish(dns_server, egress):
    dns_server.set_records("nospf.test", [("@", "TXT", '"some-other=verification"')])
    finding = one(spf_findings("nospf.test"), "spf.none")
    assert finding.severity == "error"
    assert finding.record_name == "nospf.test" and finding.record_type == "TXT"
    assert finding.fix == 'nospf.test. IN TXT "v=spf1 ip4:203.0.113.7 ~all"'


def test_a_domain_that_does_not_exist_has_no_spf_record(dns_server, egress):
    dns_server.set_records("exists.test", [])
    assert codes(spf_findings("gone.exists.test")) == ["spf.none"]


def test_two_spf_records_are_a_permerror_naming_both_and_merged_in_the_fix(dns_server, egress):
    dns_server.set_records("twospf.test", [
        ("@", "TXT", '"v=spf1 ip4:198.51.100.1 -all"'),
        ("@", "TXT", '"v=spf1 include:_spf.twospf.test ~all"'),
    ])
    findings = spf_findings("twospf.test")
    finding = one(findings, "spf.multiple")
    assert finding.severity == "error"
    assert "permerror" in finding.explanation
    assert '"v=spf1 ip4:198.51.100.1 -all"' in finding.explanation
    assert '"v=spf1 include:_spf.twospf.test ~all"' in finding.explanation
    assert finding.fix == ('twospf.test. IN TXT "v=spf1 ip4:198.51.100.1 '
                           'include:_spf.twospf.test ip4:203.0.113.7 -all"')
    assert "spf.valid" not in codes(findings)


def test_a_record_that_authorizes_the_egress_address_passes(dns_server, egress):
    dns_server.set_records("good.test", [("@", "TXT", '"v=spf1 ip4:203.0.113.0/28 -all"')])
    findings = spf_findings("good.test")
    assert sorted(codes(findings)) == ["spf.authorized", "spf.valid"]
    assert all(f.severity == "ok" for f in findings)
    assert "203.0.113.7" in one(findings, "spf.authorized").explanation


def test_a_record_that_does_not_authorize_the_egress_address_gets_it_added(dns_server, egress):
    dns_server.set_records("other.test", [("@", "TXT", '"v=spf1 mx ip4:198.51.100.0/24 ~all"'),
                                          ("@", "MX", "10 mail.other.test."),
                                          ("mail", "A", "198.51.100.25")])
    findings = spf_findings("other.test")
    finding = one(findings, "spf.not_authorized")
    assert finding.severity == "error"
    assert "203.0.113.7 (softfail)" in finding.explanation
    # The change to the existing record, before its all term; not a second record.
    assert finding.fix == 'other.test. IN TXT "v=spf1 mx ip4:198.51.100.0/24 ip4:203.0.113.7 ~all"'
    assert "spf.valid" in codes(findings)


def test_every_egress_network_must_pass_at_both_ends(dns_server, settings):
    settings.RELAY_EGRESS_IPS = ["203.0.113.0/30", "2001:db8::25"]
    dns_server.set_records("half.test", [
        ("@", "TXT", '"v=spf1 ip4:203.0.113.0/31 ip6:2001:db8::/64 -all"')])
    finding = one(spf_findings("half.test"), "spf.not_authorized")
    assert "203.0.113.0/30 (fail)" in finding.explanation
    assert "2001:db8::25" not in finding.explanation
    assert finding.fix.endswith('ip4:203.0.113.0/30 -all"')


def test_the_smarthost_include_is_found_through_nested_includes(dns_server, settings):
    settings.RELAY_EGRESS_IPS = []
    settings.RELAY_SPF_INCLUDE = "spf.smarthost.test"
    dns_server.set_records("smarthost.test", [("spf", "TXT", '"v=spf1 ip4:192.0.2.0/24 -all"')])
    dns_server.set_records("nested.test", [
        ("@", "TXT", '"v=spf1 include:_spf.nested.test -all"'),
        ("_spf", "TXT", '"v=spf1 include:spf.smarthost.test ~all"'),
    ])
    findings = spf_findings("nested.test")
    assert sorted(codes(findings)) == ["spf.authorized", "spf.valid"]
    assert one(findings, "spf.valid").explanation.endswith(
        "2 of the 10 DNS lookups an evaluation may make.")


def test_a_missing_smarthost_include_is_inserted_before_the_all_term(dns_server, settings):
    settings.RELAY_EGRESS_IPS = []
    settings.RELAY_SPF_INCLUDE = "include:spf.smarthost.test"
    dns_server.set_records("smarthost.test", [("spf", "TXT", '"v=spf1 ip4:192.0.2.0/24 -all"')])
    dns_server.set_records("noinclude.test", [("@", "TXT", '"v=spf1 ip4:198.51.100.1 -all"')])
    finding = one(spf_findings("noinclude.test"), "spf.include_missing")
    assert finding.severity == "error"
    assert finding.fix == ('noinclude.test. IN TXT '
                           '"v=spf1 ip4:198.51.100.1 include:spf.smarthost.test -all"')


def test_without_relay_settings_an_info_says_what_to_set(dns_server, settings):
    settings.RELAY_EGRESS_IPS = []
    settings.RELAY_SPF_INCLUDE = ""
    dns_server.set_records("unset.test", [("@", "TXT", '"v=spf1 ip4:198.51.100.1 -all"')])
    findings = spf_findings("unset.test")
    assert sorted(codes(findings)) == ["spf.unconfigured", "spf.valid"]
    info = one(findings, "spf.unconfigured")
    assert info.severity == "info"
    assert "RELAY_EGRESS_IPS" in info.explanation and "RELAY_SPF_INCLUDE" in info.explanation


def test_redirect_is_followed_for_lookups_authorization_and_the_all_term(dns_server, egress):
    dns_server.set_records("redir.test", [
        ("@", "TXT", '"v=spf1 redirect=_spf.redir.test"'),
        ("_spf", "TXT", '"v=spf1 a:mail.redir.test ip4:203.0.113.7 ?all"'),
        ("mail", "A", "198.51.100.9"),
    ])
    findings = spf_findings("redir.test")
    assert one(findings, "spf.authorized").severity == "ok"
    assert "2 of the 10" in one(findings, "spf.valid").explanation
    # The ?all that applies is in the record redirect= leads to: that is the one to change.
    warning = one(findings, "spf.permissive_all")
    assert warning.record_name == "_spf.redir.test"
    assert warning.fix == '_spf.redir.test. IN TXT "v=spf1 a:mail.redir.test ip4:203.0.113.7 ~all"'


def test_an_egress_address_missing_behind_a_redirect_goes_before_the_redirect(dns_server, egress):
    dns_server.set_records("redir2.test", [
        ("@", "TXT", '"v=spf1 redirect=_spf.redir2.test"'),
        ("_spf", "TXT", '"v=spf1 ip4:198.51.100.1 -all"'),
    ])
    finding = one(spf_findings("redir2.test"), "spf.not_authorized")
    assert finding.fix == 'redir2.test. IN TXT "v=spf1 ip4:203.0.113.7 redirect=_spf.redir2.test"'
    assert check_address("203.0.113.7", "redir2.test")[0] == "fail"


def test_more_than_ten_lookups_is_an_error_counted_through_includes(dns_server, egress):
    # 1 (include:a) + 5 in a + 1 (include:b) + 4 in b = 11
    dns_server.set_records("many.test", [
        ("@", "TXT", '"v=spf1 ip4:203.0.113.7 include:a.many.test include:b.many.test -all"'),
        ("a", "TXT", '"v=spf1 a mx a:h1.many.test a:h2.many.test a:h3.many.test -all"'),
        ("b", "TXT", '"v=spf1 a:h1.many.test a:h2.many.test a:h3.many.test a:h4.many.test -all"'),
        ("a", "A", "198.51.100.1"), ("a", "MX", "10 h1.many.test."),
        ("h1", "A", "198.51.100.1"), ("h2", "A", "198.51.100.2"),
        ("h3", "A", "198.51.100.3"), ("h4", "A", "198.51.100.4"),
    ])
    findings = spf_findings("many.test")
    finding = one(findings, "spf.too_many_lookups")
    assert finding.severity == "error"
    assert "needs 11 DNS lookups" in finding.title
    assert "include:a.many.test 6, include:b.many.test 5" in finding.explanation
    assert "spf.valid" not in codes(findings)
    # pyspf, evaluating as a receiver, agrees: an address it reaches only after the 10th
    # lookup gets a permanent error.
    assert check_address("198.51.100.99", "many.test")[0] == "permerror"


def test_ten_lookups_are_allowed(dns_server, egress):
    hosts = " ".join(f"a:h{i}.ten.test" for i in range(10))
    dns_server.set_records("ten.test", [("@", "TXT", f'"v=spf1 ip4:203.0.113.7 {hosts} -all"')]
                           + [(f"h{i}", "A", f"198.51.100.{i + 1}") for i in range(10)])
    findings = spf_findings("ten.test")
    assert "10 of the 10" in one(findings, "spf.valid").explanation


def test_one_void_lookup_is_a_warning_with_the_record_without_it(dns_server, egress):
    dns_server.set_records("void1.test", [
        ("@", "TXT", '"v=spf1 ip4:203.0.113.7 a:old.void1.test -all"')])
    findings = spf_findings("void1.test")
    finding = one(findings, "spf.void_lookup")
    assert finding.severity == "warning"
    assert "a:old.void1.test" in finding.explanation
    assert finding.fix == 'void1.test. IN TXT "v=spf1 ip4:203.0.113.7 -all"'
    assert "spf.valid" in codes(findings)


def test_more_than_two_void_lookups_is_an_error(dns_server, egress):
    dns_server.set_records("void3.test", [
        ("@", "TXT", '"v=spf1 a:x.void3.test mx:y.void3.test include:z.void3.test '
                     'ip4:203.0.113.7 -all"'),
        ("x", "TXT", '"not an address"'),
    ])
    findings = spf_findings("void3.test")
    finding = one(findings, "spf.void_lookups")
    assert finding.severity == "error"
    assert "a:x.void3.test, mx:y.void3.test, include:z.void3.test" in finding.explanation
    # include: of a name without SPF is a permanent error of its own.
    assert any(f.code == "spf.include_error" and "include:z.void3.test" in f.title
               for f in findings)
    assert check_address("203.0.113.7", "void3.test")[0] == "permerror"
    assert "spf.valid" not in codes(findings)


@pytest.mark.parametrize("ending, qualifier", [("+all", "+all"), ("all", "+all"),
                                               ("?all", "?all")])
def test_a_permissive_all_is_a_warning_with_softfail_in_the_fix(dns_server, egress, ending,
                                                               qualifier):
    dns_server.set_records("open.test", [("@", "TXT", f'"v=spf1 ip4:203.0.113.7 {ending}"')])
    finding = one(spf_findings("open.test"), "spf.permissive_all")
    assert finding.severity == "warning"
    assert finding.title.endswith(qualifier)
    assert finding.fix == 'open.test. IN TXT "v=spf1 ip4:203.0.113.7 ~all"'


def test_a_record_without_an_all_term_is_a_warning(dns_server, egress):
    dns_server.set_records("noall.test", [("@", "TXT", '"v=spf1 ip4:203.0.113.7"')])
    finding = one(spf_findings("noall.test"), "spf.no_all")
    assert finding.severity == "warning"
    assert finding.fix == 'noall.test. IN TXT "v=spf1 ip4:203.0.113.7 ~all"'


def test_ptr_is_a_warning(dns_server, egress):
    dns_server.set_records("ptr.test", [("@", "TXT", '"v=spf1 ip4:203.0.113.7 ptr -all"')])
    finding = one(spf_findings("ptr.test"), "spf.ptr")
    assert finding.severity == "warning"
    assert finding.fix == 'ptr.test. IN TXT "v=spf1 ip4:203.0.113.7 -all"'


@pytest.mark.parametrize("bad, why", [("ip4:203.0.113.300", "Invalid IP4 address"),
                                      ("foo:bar.test", "Unknown mechanism"),
                                      ("ip4:203.0.113.0/33", "Invalid IP4 CIDR length")])
def test_a_syntax_error_names_the_term_and_the_fix_drops_it(dns_server, egress, bad, why):
    dns_server.set_records("syntax.test", [("@", "TXT", f'"v=spf1 {bad} ip4:203.0.113.7 -all"')])
    findings = spf_findings("syntax.test")
    finding = one(findings, "spf.syntax")
    assert finding.severity == "error"
    assert bad in finding.title and why in finding.explanation
    assert finding.fix == 'syntax.test. IN TXT "v=spf1 ip4:203.0.113.7 -all"'
    # As a receiver evaluates it, the record fails for everyone, the relay included,
    # though it names the relay's address: the fix is the error's, not a changed record.
    refused = one(findings, "spf.not_authorized")
    assert "203.0.113.7 (permerror)" in refused.explanation
    assert "makes SPF fail" in refused.explanation and refused.fix == ""
    assert "spf.valid" not in codes(findings)


def test_servfail_is_could_not_check_never_missing(dns_server, egress):
    dns_server.break_zone("spf-broken.test")
    findings = spf_findings("spf-broken.test")
    assert codes(findings) == ["spf.unknown"]
    assert findings[0].severity == "unknown"
    assert "could not" in findings[0].title.lower() and "not a missing record" in findings[0].explanation


def test_an_include_that_servfails_is_unknown_not_missing(dns_server, egress):
    dns_server.break_zone("spf-broken2.test")
    dns_server.set_records("incbroken.test", [
        ("@", "TXT", '"v=spf1 ip4:203.0.113.7 include:_spf.spf-broken2.test -all"')])
    findings = spf_findings("incbroken.test")
    assert "spf.unknown" in codes(findings)
    assert "spf.syntax" not in codes(findings) and "spf.void_lookup" not in codes(findings)
    assert "spf.valid" not in codes(findings)


def test_a_timeout_is_could_not_check(dns_server, egress, settings):
    settings.SMTPPLUS_DNS_RESOLVERS = [dns_server.silent_address]
    settings.SMTPPLUS_DNS_TIMEOUT = 0.5
    findings = spf_findings("anything.test")
    assert codes(findings) == ["spf.unknown"]
    assert "timeout" in findings[0].explanation


def test_an_error_in_an_included_record_is_named_with_where_it_is(dns_server, egress):
    dns_server.set_records("incerr.test", [
        ("@", "TXT", '"v=spf1 ip4:203.0.113.7 include:_spf.incerr.test -all"'),
        ("_spf", "TXT", '"v=spf1 ip4:198.51.100.300 -all"'),
    ])
    finding = one(spf_findings("incerr.test"), "spf.syntax")
    assert finding.title == "An SPF record that incerr.test includes has an error"
    assert '"ip4:198.51.100.300" in the record of _spf.incerr.test' in finding.explanation
    assert finding.fix == ""  # not ours to change: the explanation says whom to ask


def test_includes_that_loop_are_an_error(dns_server, egress):
    dns_server.set_records("loop.test", [
        ("@", "TXT", '"v=spf1 ip4:203.0.113.7 include:a.loop.test -all"'),
        ("a", "TXT", '"v=spf1 include:loop.test -all"'),
    ])
    findings = spf_findings("loop.test")
    finding = one(findings, "spf.include_error")
    assert "loop.test is already being evaluated (a loop)" in finding.explanation
    assert "spf.valid" not in codes(findings)


def test_an_error_only_a_receiver_meets_is_still_reported(dns_server, egress):
    # More than 10 MX hosts behind one mx term: no term is wrong, but pyspf (evaluating as
    # a receiver does) stops with a permanent error.
    dns_server.set_records("mx11.test", [("@", "TXT", '"v=spf1 ip4:203.0.113.7 mx -all"')]
                           + [("@", "MX", f"{i} mx{i}.mx11.test.") for i in range(11)]
                           + [(f"mx{i}", "A", f"198.51.100.{i + 1}") for i in range(11)])
    findings = spf_findings("mx11.test")
    finding = one(findings, "spf.receiver_error")
    assert finding.severity == "error"
    assert "More than 10 MX records returned" in finding.explanation
    assert "spf.valid" not in codes(findings)


def test_a_macro_term_is_counted_but_not_followed(dns_server, egress):
    dns_server.set_records("macro.test", [
        ("@", "TXT", '"v=spf1 ip4:203.0.113.7 exists:%{i}._spf.macro.test -all"')])
    findings = spf_findings("macro.test")
    assert "1 of the 10" in one(findings, "spf.valid").explanation
    assert "spf.void_lookup" not in codes(findings)


def test_several_changes_to_one_record_are_offered_as_one_record(dns_server, egress):
    # ptr makes receivers look up the sending address's name: the reverse zone answers.
    dns_server.set_records("113.0.203.in-addr.arpa", [("7", "PTR", "relay.several.test.")])
    dns_server.set_records("several.test", [
        ("@", "TXT", '"v=spf1 ip4:198.51.100.1 a:old.several.test ptr +all"'),
        ("relay", "A", "203.0.113.7")])
    findings = spf_findings("several.test")
    changing = [f for f in findings if f.fix]
    assert sorted(f.code for f in changing) == ["spf.permissive_all", "spf.ptr", "spf.void_lookup"]
    # ptr (or else +all) lets the relay in today; the record without them names its address.
    assert one(findings, "spf.authorized").severity == "ok"
    assert {f.fix for f in changing} == {
        'several.test. IN TXT "v=spf1 ip4:198.51.100.1 ip4:203.0.113.7 ~all"'}
    assert all("makes every change listed for this record at once" in f.explanation
               for f in changing)


def test_a_missing_all_term_behind_a_redirect_goes_to_the_record_it_leads_to(dns_server, egress):
    dns_server.set_records("redir3.test", [
        ("@", "TXT", '"v=spf1 redirect=_spf.redir3.test"'),
        ("_spf", "TXT", '"v=spf1 ip4:203.0.113.7"'),
    ])
    finding = one(spf_findings("redir3.test"), "spf.no_all")
    # ~all in the domain's own record would stop redirect= from ever being used.
    assert finding.record_name == "_spf.redir3.test"
    assert finding.fix == '_spf.redir3.test. IN TXT "v=spf1 ip4:203.0.113.7 ~all"'


def test_a_record_far_over_the_limit_is_not_read_to_the_end(dns_server, egress):
    hosts = " ".join(f"a:h{i}.far.test" for i in range(9))
    dns_server.set_records("far.test", [
        ("@", "TXT", '"v=spf1 ip4:203.0.113.7 ' + " ".join(f"include:i{n}.far.test" for n in range(4))
         + ' -all"')]
        + [(f"i{n}", "TXT", f'"v=spf1 {hosts} -all"') for n in range(4)]
        + [(f"h{i}", "A", "198.51.100.1") for i in range(9)])
    finding = one(spf_findings("far.test"), "spf.too_many_lookups")
    # 3 includes of 1 + 9 lookups each, then the 4th include is counted but not read.
    assert "needs at least 31 DNS lookups" in finding.title
