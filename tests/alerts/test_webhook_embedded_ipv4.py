"""IPv6 addresses that carry an IPv4 address (IPv4-mapped, -translated, -compatible,
NAT64, 6to4, Teredo, ISATAP) are judged by that IPv4 address too: a webhook cannot reach
loopback, the internal network or cloud metadata through them — given literally, in any
spelling, or as a name that resolves to one."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.urls import reverse

from alerts.channels import ChannelError, WebhookChannel, embedded_ipv4, is_public_address
from alerts.content import AlertContent
from alerts.models import AlertRule
from tests.alerts.test_views import FORM
from tests.conftest import login

ROOT = Path(__file__).resolve().parents[2]
CONTENT = AlertContent(subject="s", text="t", html="<p>h</p>", payload={"type": "smtpplus.alert"})

# (address, public?) — 127.0.0.1, 10.0.0.1, 169.254.169.254 and 0.0.0.0 in every wrapping,
# and the public 93.184.215.14 (5db8:d70e) in the same wrappings for contrast.
ADDRESSES = [
    # IPv4-compatible ::/96 (deprecated)
    ("::127.0.0.1", False), ("::7f00:1", False), ("0:0:0:0:0:0:7f00:1", False),
    ("::10.0.0.1", False), ("::169.254.169.254", False), ("::0.0.0.0", False),
    ("::", False), ("::1", False), ("::93.184.215.14", True),
    # IPv4-mapped ::ffff:0:0/96
    ("::ffff:127.0.0.1", False), ("::FFFF:7F00:1", False), ("0:0:0:0:0:ffff:7f00:1", False),
    ("::ffff:169.254.169.254", False), ("::ffff:0.0.0.0", False), ("::ffff:93.184.215.14", True),
    # IPv4-translated ::ffff:0:0:0/96 (RFC 2765)
    ("::ffff:0:127.0.0.1", False), ("::ffff:0:7f00:1", False), ("0:0:0:0:ffff:0:7f00:1", False),
    ("::ffff:0:a00:1", False), ("::ffff:0:169.254.169.254", False), ("::ffff:0:0.0.0.0", False),
    ("::ffff:0:93.184.215.14", True),
    # NAT64 well-known prefix 64:ff9b::/96
    ("64:ff9b::127.0.0.1", False), ("64:ff9b::a00:1", False), ("64:ff9b::169.254.169.254", False),
    ("64:ff9b::93.184.215.14", True),
    # NAT64 local-use 64:ff9b:1::/48: the operator's translation, never public
    ("64:ff9b:1::7f00:1", False), ("64:ff9b:1:7f00:1::", False), ("64:ff9b:1::5db8:d70e", False),
    # 6to4 2002::/16 (IPv4 in bits 16-47)
    ("2002:7f00:1::", False), ("2002:a00:1::1", False), ("2002:a9fe:a9fe:1::1", False),
    ("2002:5db8:d70e::1", True),
    # Teredo 2001::/32: server in bits 32-63, client inverted in the last 32 bits
    ("2001:0:a00:1::a247:28f1", False), ("2001:0:5db8:d70e::80ff:fffe", False),
    ("2001:0:5db8:d70e::a247:28f1", False),  # both public, but Teredo is not globally reachable
    # ISATAP interface identifiers under a public prefix
    ("2606:2800:21f:cb07:0:5efe:7f00:1", False), ("2606:2800:21f:cb07:200:5efe:a00:1", False),
    ("2606:2800:21f:cb07:200:5efe:a9fe:a9fe", False), ("2606:2800:21f:cb07:200:5efe:5db8:d70e", True),
    # plain IPv6 for contrast, and zones
    ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", True), ("::127.0.0.1%eth0", False),
]


@pytest.mark.parametrize(("address", "public"), ADDRESSES)
def test_an_ipv6_address_is_judged_by_the_ipv4_address_it_carries(address, public):
    assert is_public_address(address) is public


@pytest.mark.parametrize(("address", "carried"), [
    ("::ffff:127.0.0.1", ["127.0.0.1"]), ("::ffff:0:127.0.0.1", ["127.0.0.1"]),
    ("::127.0.0.1", ["127.0.0.1"]), ("64:ff9b::a9fe:a9fe", ["169.254.169.254"]),
    ("2002:a9fe:a9fe::1", ["169.254.169.254"]),
    ("2001:0:5db8:d70e::80ff:fffe", ["93.184.215.14", "127.0.0.1"]),
    ("2606:2800:21f:cb07:200:5efe:a00:1", ["10.0.0.1"]),
    ("2606:2800:21f:cb07:6820:80da:af6b:8b2c", []),
])
def test_it_finds_every_ipv4_address_an_ipv6_address_carries(address, carried):
    assert [str(a) for a in embedded_ipv4(ipaddress.IPv6Address(address))] == carried


@pytest.mark.django_db
@pytest.mark.parametrize("host", [
    "[::127.0.0.1]", "[::ffff:0:127.0.0.1]", "[0:0:0:0:ffff:0:7f00:1]:8080", "[::7f00:1]",
    "[64:ff9b::169.254.169.254]", "[2001:0:5db8:d70e::80ff:fffe]", "[::]", "[2002:a00:1::1]",
    "[2606:2800:21f:cb07:200:5efe:a9fe:a9fe]", "[::ffff:0:a00:1]",
])
def test_the_form_refuses_a_webhook_whose_ipv6_address_carries_a_private_ipv4(client, cast, host):
    login(client, cast.alice)
    r = client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": f"http://{host}/hook"})
    assert "Alerts cannot be sent to this URL" in r.content.decode()
    assert not AlertRule.objects.filter(name="Shop failures").exists()


@pytest.mark.django_db
def test_the_form_accepts_a_webhook_whose_ipv6_address_carries_a_public_ipv4(client, cast):
    login(client, cast.alice)
    client.post(reverse("alerts:rule_create"), {**FORM, "webhook_url": "https://[64:ff9b::5db8:d70e]/h"})
    assert AlertRule.objects.filter(name="Shop failures").exists()


@pytest.fixture
def loopback_hook() -> Iterator[tuple[int, list[bytes]]]:
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1], received
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("host", [
    "[::ffff:127.0.0.1]", "[::127.0.0.1]", "[::ffff:0:127.0.0.1]", "[64:ff9b::7f00:1]",
    "[2002:7f00:1::1]",
])
def test_sending_refuses_such_a_literal_before_connecting(loopback_hook, host):
    port, received = loopback_hook
    with pytest.raises(ChannelError) as caught:
        WebhookChannel(f"http://{host}:{port}/hook", "whsec_x").notify(CONTENT)
    assert caught.value.permanent
    assert received == []


# Names resolved by the system resolver, from a hosts file of our own: the test runs the
# channel in a child process with a private mount namespace where it is /etc/hosts.
NAMES = {
    "compat.hook.test": "::127.0.0.1",
    "translated.hook.test": "::ffff:0:127.0.0.1",
    "mapped.hook.test": "::ffff:127.0.0.1",
    "nat64.hook.test": "64:ff9b::7f00:1",
    "nat64-metadata.hook.test": "64:ff9b::a9fe:a9fe",
    "sixtofour.hook.test": "2002:7f00:1::1",
    "teredo.hook.test": "2001:0:5db8:d70e::80ff:fffe",
    "isatap.hook.test": "2606:2800:21f:cb07:200:5efe:7f00:1",
    "loopback.hook.test": "127.0.0.1",
}

CHILD = """
import json, sys
import django
django.setup()
from alerts.channels import ChannelError, WebhookChannel
from alerts.content import AlertContent
content = AlertContent(subject="s", text="t", html="h", payload={})
port, names = int(sys.argv[1]), sys.argv[2:]
out = {}
for name in names:
    try:
        WebhookChannel(f"http://{name}:{port}/hook", "whsec_x").notify(content)
        out[name] = "sent"
    except ChannelError as exc:
        out[name] = str(exc)
print(json.dumps(out))
"""


def _resolve_and_send(tmp_path, port: int, names: list[str], **env: str) -> dict[str, str]:
    unshare = shutil.which("unshare")
    assert unshare, "these tests need util-linux's unshare (a private /etc/hosts)"
    hosts = tmp_path / "hosts"
    hosts.write_text("".join(f"{address} {name}\n" for name, address in NAMES.items()))
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    done = subprocess.run(
        [unshare, "--map-root-user", "--mount", "sh", "-c", script, str(hosts),
         sys.executable, "-c", CHILD, str(port), *names],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "smtpplus.settings", **env},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_name_resolving_to_an_ipv6_form_of_a_private_address_is_refused(tmp_path, loopback_hook):
    port, received = loopback_hook
    names = [n for n in NAMES if n != "loopback.hook.test"]
    results = _resolve_and_send(tmp_path, port, names, ALERTS_WEBHOOK_ALLOW_PRIVATE="false")
    for name in names:
        assert results[name].startswith(f"the webhook host {name} resolves to "), name
        shown = results[name].split(" resolves to ", 1)[1].split(": ", 1)[0]
        assert ipaddress.ip_address(shown) == ipaddress.ip_address(NAMES[name])
        assert "not sent to loopback, private or link-local addresses" in results[name]
    assert received == []


def test_the_private_hosts_file_is_what_the_child_resolves(tmp_path, loopback_hook):
    port, received = loopback_hook
    results = _resolve_and_send(tmp_path, port, ["loopback.hook.test"],
                                ALERTS_WEBHOOK_ALLOW_PRIVATE="true")
    assert results == {"loopback.hook.test": "sent"}
    assert len(received) == 1
