"""RELAY_UPSTREAM parsing, and direct MX delivery against a loopback DNS server."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from relay.delivery.upstreams.spec import UpstreamConfigError, UpstreamSpec, parse_upstream
from relay.delivery.worker import deliver_due
from relay.models import RecipientStatus
from tests.fake_upstream import FakeUpstream, queue_message


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.example.com:587", UpstreamSpec("smtp", "mail.example.com", 587)),
        ("smtp://mail.example.com", UpstreamSpec("smtp", "mail.example.com", 25)),
        (
            "smtp://us%40er:p%3Ass@mail.example.com:587?tls=require",
            UpstreamSpec("smtp", "mail.example.com", 587, "us@er", "p:ss", require_tls=True),
        ),
        (
            "smtp://127.0.0.1:2525?verify=no",
            UpstreamSpec("smtp", "127.0.0.1", 2525, verify=False),
        ),
        (
            "smtps://u:p@smtp.example.com",
            UpstreamSpec("smtps", "smtp.example.com", 465, "u", "p", require_tls=True),
        ),
        ("mx", UpstreamSpec("mx", verify=False)),
        ("mx?verify=yes", UpstreamSpec("mx", verify=True)),
        ("maildir:/var/mail/smtpplus", UpstreamSpec("maildir", path="/var/mail/smtpplus")),
    ],
)
def test_it_understands_every_upstream_form(url, expected):
    assert parse_upstream(url) == expected


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://mail.example.com", "expected smtp://"),
        ("smtp://:25", "no host"),
        ("smtp://mail.example.com:http", "bad port"),
        ("smtp://mail.example.com?tls=maybe", "tls='maybe' is not yes/no"),
        ("smtp://mail.example.com?tsl=require", "unknown option(s) tsl"),
        ("maildir:", "maildir needs a path"),
        ("mail.example.com:25", "expected smtp://"),
    ],
)
def test_a_bad_upstream_url_gets_an_error_that_says_what_is_wrong(url, says):
    with pytest.raises(UpstreamConfigError) as exc:
        parse_upstream(url)
    assert says in str(exc.value)


def test_the_deliver_command_refuses_to_start_with_a_bad_upstream(settings):
    from django.core.management import CommandError, call_command

    settings.RELAY_UPSTREAM = "smpt://mail.example.com"
    with pytest.raises(CommandError, match="expected smtp://"):
        call_command("deliver", "--once")


class LoopbackDns:
    """A tiny authoritative DNS server on UDP loopback, answering from a dict."""

    def __init__(self) -> None:
        self.records: dict[tuple[str, str], list[str]] = {}
        self.nxdomain: set[str] = set()
        self.servfail: set[str] = set()
        self.queries: list[tuple[str, str]] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            response = dns.message.make_response(query)
            question = query.question[0]
            name = question.name.to_text().rstrip(".").lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            if name in self.servfail:
                response.set_rcode(dns.rcode.SERVFAIL)
            elif name in self.nxdomain:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif (name, rdtype) in self.records:
                response.answer.append(
                    dns.rrset.from_text(name + ".", 60, "IN", rdtype, *self.records[(name, rdtype)])
                )
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def dns_server() -> Iterator[LoopbackDns]:
    server = LoopbackDns()
    yield server
    server.close()


@pytest.fixture
def mx_url(dns_server: LoopbackDns, upstream: FakeUpstream) -> str:
    return f"mx?port={upstream.port}&nameserver=127.0.0.1:{dns_server.port}"


@pytest.mark.django_db(transaction=True)
def test_mx_delivery_tries_hosts_by_preference_and_skips_one_that_is_down(
    cast, upstream, dns_server, mx_url
):
    # mx1 (preferred) is an address where nothing listens; mx2 is the upstream.
    dns_server.records[("example.net", "MX")] = ["20 mx2.example.net.", "10 mx1.example.net."]
    dns_server.records[("mx1.example.net", "A")] = ["127.0.0.2"]
    dns_server.records[("mx2.example.net", "A")] = ["127.0.0.1"]
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=mx_url)

    assert message.recipients.get().status == RecipientStatus.DELIVERED
    assert upstream.recipients_received() == ["bob@example.net"]
    assert message.recipients.get().attempt_set.get().upstream.startswith("mx2.example.net[")


@pytest.mark.django_db(transaction=True)
def test_mx_delivery_falls_back_to_the_domains_own_address(cast, upstream, dns_server, mx_url):
    dns_server.records[("example.org", "A")] = ["127.0.0.1"]
    message = queue_message(cast.acme_smtp, ["eve@example.org"])

    deliver_due(upstream=mx_url)

    assert message.recipients.get().status == RecipientStatus.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_a_null_mx_or_missing_domain_fails_at_once_and_dns_trouble_defers(
    cast, upstream, dns_server, mx_url
):
    dns_server.records[("nomail.example", "MX")] = ["0 ."]
    dns_server.nxdomain.add("nowhere.example")
    dns_server.servfail.add("broken.example")
    message = queue_message(
        cast.acme_smtp, ["a@nomail.example", "b@nowhere.example", "c@broken.example"]
    )

    deliver_due(upstream=mx_url)

    got = {r.address: r for r in message.recipients.all()}
    assert got["a@nomail.example"].status == "failed"
    assert got["a@nomail.example"].fail_reason == "null_mx"
    assert got["a@nomail.example"].last_enhanced == "5.1.10"
    assert got["b@nowhere.example"].status == "failed"
    assert got["b@nowhere.example"].fail_reason == "no_such_domain"
    assert got["c@broken.example"].status == "deferred"
    assert got["c@broken.example"].last_enhanced == "4.4.3"
    assert upstream.received == []


@pytest.mark.django_db(transaction=True)
def test_an_address_whose_domain_is_not_a_valid_name_fails_at_once(
    cast, upstream, dns_server, mx_url
):
    message = queue_message(cast.acme_smtp, ["x@a..com", f"y@{'a' * 64}.com"])

    stats = deliver_due(upstream=mx_url)

    assert stats["errors"] == 0
    for rcpt in message.recipients.all():
        assert rcpt.status == RecipientStatus.FAILED
        assert rcpt.last_enhanced == "5.1.2"
        assert rcpt.fail_reason == "no_such_domain"
        assert rcpt.attempts == 1
    # No lookup for the invalid names (the sender's report goes to acme.test's MX).
    assert [q for q in dns_server.queries if not q[0].endswith("acme.test")] == []


@pytest.mark.django_db(transaction=True)
def test_dns_trouble_with_a_backup_mail_host_does_not_hold_up_the_primary(
    cast, upstream, dns_server, mx_url
):
    dns_server.records[("example.net", "MX")] = ["10 mx1.example.net.", "20 mx2.example.net."]
    dns_server.records[("mx1.example.net", "A")] = ["127.0.0.1"]
    dns_server.servfail.add("mx2.example.net")
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=mx_url)

    assert message.recipients.get().status == RecipientStatus.DELIVERED


@pytest.mark.django_db(transaction=True)
def test_dns_trouble_with_every_mail_host_defers(cast, upstream, dns_server, mx_url):
    dns_server.records[("example.net", "MX")] = ["10 mx1.example.net."]
    dns_server.servfail.add("mx1.example.net")
    message = queue_message(cast.acme_smtp, ["bob@example.net"])

    deliver_due(upstream=mx_url)

    rcpt = message.recipients.get()
    assert rcpt.status == RecipientStatus.DEFERRED
    assert rcpt.last_enhanced == "4.4.3"
    assert "mx1.example.net" in rcpt.last_text


@pytest.mark.django_db(transaction=True)
def test_dns_answers_are_remembered_between_messages(cast, upstream, dns_server, mx_url):
    dns_server.records[("example.org", "A")] = ["127.0.0.1"]
    first = queue_message(cast.acme_smtp, ["eve@example.org"])
    second = queue_message(cast.acme_smtp, ["ann@example.org"])

    deliver_due(upstream=mx_url)

    assert first.recipients.get().status == RecipientStatus.DELIVERED
    assert second.recipients.get().status == RecipientStatus.DELIVERED
    assert dns_server.queries.count(("example.org", "MX")) == 1
    assert dns_server.queries.count(("example.org", "A")) == 1
