import pytest

from accounts.senders import parse_domains, parse_emails, split_entries
from smtpplus.addresses import InvalidEntry, normalize_domain


def test_it_splits_on_semicolons_commas_spaces_and_newlines():
    assert split_entries("a.com; b.com,c.com d.com\ne.com;;") == ["a.com", "b.com", "c.com", "d.com", "e.com"]


def test_it_normalises_case_trailing_dot_and_idn():
    assert normalize_domain("Example.COM.") == "example.com"
    assert normalize_domain("Bücher.Example") == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    "entry, reason",
    [
        ("bad..domain", "empty label"),
        ("192.0.2.1", "IP addresses"),
        ("[192.0.2.1]", "IP addresses"),
        ("localhost", "two labels"),
        ("-bad.com", "not a valid"),
        ("http://example.com/", "without http"),
    ],
)
def test_it_rejects_invalid_domains_with_a_reason(entry, reason):
    with pytest.raises(InvalidEntry) as exc:
        normalize_domain(entry)
    assert reason in str(exc.value)


def test_parse_domains_names_each_bad_entry_and_keeps_good_ones():
    result = parse_domains("example.com; shop.example.com, bad..domain")
    assert result.valid == ["example.com", "shop.example.com"]
    assert [e for e, _ in result.errors] == ["bad..domain"]


def test_parse_domains_warns_about_www_and_offers_addresses_typed_as_domains():
    result = parse_domains("www.example.com ann@example.com")
    assert result.valid == ["www.example.com"]
    assert "example.com" in result.warnings[0][1]
    assert result.emails_in_domain_box == ["ann@example.com"]


def test_parse_emails_ignores_duplicates_case_insensitively():
    result = parse_emails("Ann@Example.com; ann@example.com; nope")
    assert result.valid == ["Ann@example.com"]
    assert result.errors == [("nope", "missing @")]


def test_a_pasted_display_name_form_authorizes_its_address():
    parsed = parse_emails("Alice <alice@acme.example>")
    assert parsed.valid == ["alice@acme.example"] and parsed.errors == []


def test_a_quoted_display_name_with_a_comma_stays_one_entry():
    parsed = parse_emails('"Smith, Alice" <alice@acme.example>; bob@acme.example')
    assert parsed.valid == ["alice@acme.example", "bob@acme.example"] and parsed.errors == []


def test_a_display_name_form_with_an_idn_domain_is_stored_as_an_a_label():
    assert parse_emails("Info <info@bücher.example>").valid == ["info@xn--bcher-kva.example"]


def test_a_display_name_that_is_itself_an_address_is_refused_as_ambiguous():
    parsed = parse_emails("bob@other.example <alice@acme.example>")
    assert parsed.valid == []
    [(entry, reason)] = parsed.errors
    assert entry == "bob@other.example <alice@acme.example>"
    assert reason.startswith("two addresses in one entry")


def test_a_display_name_form_with_a_broken_address_is_one_refused_entry():
    [(entry, _)] = parse_emails("Alice <alice@>").errors
    assert entry == "Alice <alice@>"


def test_a_display_name_form_in_the_domain_box_is_offered_as_an_address():
    assert parse_domains("Alice <alice@acme.example>").emails_in_domain_box == ["alice@acme.example"]


def test_angle_brackets_without_an_address_split_as_before():
    assert split_entries("<b>bold</b> x.com") == ["<b>bold</b>", "x.com"]
