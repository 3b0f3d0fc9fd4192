import pytest

from relay.listen import Listener, ListenSpecError, compact_ports, parse_listen, ports_by_tls


def test_it_parses_the_seed_port_list_with_ranges():
    pairs = parse_listen("0.0.0.0:25,587,2525,1025-1030")
    assert [p for _, p in pairs] == [25, 587, 2525, 1025, 1026, 1027, 1028, 1029, 1030]
    assert {h for h, _ in pairs} == {"0.0.0.0"}


def test_it_parses_several_hosts_and_ipv6():
    assert parse_listen("127.0.0.1:25 [::1]:587") == [("127.0.0.1", 25), ("::1", 587)]


@pytest.mark.parametrize("spec", ["25", "host:abc", "host:5000-1025", "host:70000", "[::1:25"])
def test_it_rejects_bad_specs_with_a_message(spec):
    with pytest.raises(ListenSpecError):
        parse_listen(spec)


def test_compact_ports_prints_ranges():
    assert compact_ports([587, 25, 1025, 1026, 1027, 2525]) == "25, 587, 1025-1027, 2525"


def test_ports_by_tls_merges_hosts_and_lists_starttls_then_plain_then_implicit():
    listeners = [Listener("::", 465, "implicit"), Listener("0.0.0.0", 2525, "none"),
                 Listener("0.0.0.0", 587, "starttls"), Listener("::", 587, "starttls"),
                 Listener("0.0.0.0", 25, "starttls")]
    assert ports_by_tls(listeners) == [
        ("STARTTLS", "25, 587"), ("no TLS", "2525"), ("implicit TLS", "465"),
    ]
