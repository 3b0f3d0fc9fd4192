"""A real authoritative DNS server for the tests: Knot DNS (`knotd`, Debian's `knot`).

The suite starts one knotd on 127.0.0.1 at an ephemeral port, serving zones that the
tests write (`set_records()`), and points the product's resolver at it
(`SMTPPLUS_DNS_RESOLVERS`). Every lookup the product makes in a test goes over the wire
to this server: nothing in the resolver is replaced.

- `set_records(zone, records)` writes a zone file with a new serial, makes knotd load it
  (a new zone is added to its configuration and knotd reloads it) and waits until the
  server answers with that serial.
- `break_zone(zone)`: the zone stays configured but cannot be loaded, so knotd answers
  SERVFAIL for every name in it.
- `silent_address`: a UDP and TCP port on loopback that never answers (a resolver that
  times out), to point `SMTPPLUS_DNS_RESOLVERS` at.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

KNOTD = shutil.which("knotd") or "/usr/sbin/knotd"
KNOTC = shutil.which("knotc") or "/usr/sbin/knotc"


def _free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free port for the test DNS server")


class DnsServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="smtpplus-knot-"))
        (self.dir / "zones").mkdir()
        self.port = _free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.zones: dict[str, int] = {}  # origin (no trailing dot) -> serial
        self.broken: set[str] = set()
        self.process: subprocess.Popen[bytes] | None = None
        self._silent: _SilentServer | None = None
        self._lock = threading.Lock()

    # --- lifecycle -----------------------------------------------------------------
    def start(self) -> None:
        self._write_config()
        log = open(self.dir / "knotd.log", "wb")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [KNOTD, "-c", str(self.dir / "knot.conf")], stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"knotd exited: {self.log()}")
            if self._control("status", check=False) == 0:
                return
            time.sleep(0.05)
        raise RuntimeError(f"knotd did not start: {self.log()}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self._silent:
            self._silent.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self) -> str:
        try:
            return (self.dir / "knotd.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    # --- zones ---------------------------------------------------------------------
    def set_records(self, zone: str, records: list[tuple[str, str, str]]) -> None:
        """Serve `zone` with exactly these records: (name, type, rdata) with `name`
        relative to the zone ("@", "_dmarc", "sel._domainkey") or absolute ("x.y.")."""
        zone = zone.rstrip(".").lower()
        with self._lock:
            serial = self.zones.get(zone, 0) + 1
            lines = [
                f"$ORIGIN {zone}.",
                "$TTL 1",
                f"@ SOA ns.{zone}. hostmaster.{zone}. {serial} 3600 600 86400 1",
                f"@ NS ns.{zone}.",
                "ns A 127.0.0.1",
            ]
            lines += [f"{name} {rtype} {rdata}" for name, rtype, rdata in records]
            (self.dir / "zones" / f"{zone}.zone").write_text("\n".join(lines) + "\n")
            new = zone not in self.zones
            was_broken = zone in self.broken
            self.zones[zone] = serial
            self.broken.discard(zone)
            if new or was_broken:
                self._write_config()
                self._control("reload")
            else:
                self._control("zone-reload", zone)
        self._wait_serial(zone, serial)

    def break_zone(self, zone: str) -> None:
        """Keep `zone` configured but unloadable: knotd answers SERVFAIL inside it."""
        zone = zone.rstrip(".").lower()
        with self._lock:
            self.zones.setdefault(zone, 0)
            self.broken.add(zone)
            (self.dir / "zones" / f"{zone}.zone").unlink(missing_ok=True)
            self._write_config()
            self._control("reload")
            self._control("zone-purge", "-f", zone, check=False)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._rcode(zone) == dns.rcode.SERVFAIL:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{zone} does not SERVFAIL: {self.log()}")

    @property
    def silent_address(self) -> str:
        """host:port of a DNS "server" that never answers (lookups time out)."""
        if self._silent is None:
            self._silent = _SilentServer()
        return self._silent.address

    # --- internals -----------------------------------------------------------------
    def _write_config(self) -> None:
        zones = "".join(f"  - domain: {z}\n" for z in sorted(self.zones))
        (self.dir / "knot.conf").write_text(
            "server:\n"
            f"    rundir: \"{self.dir}\"\n"
            f"    listen: 127.0.0.1@{self.port}\n"
            "control:\n"
            f"    listen: \"{self.dir}/knot.sock\"\n"
            "log:\n"
            "  - target: stderr\n"
            "    any: warning\n"
            "database:\n"
            f"    storage: \"{self.dir}/db\"\n"
            "template:\n"
            "  - id: default\n"
            f"    storage: \"{self.dir}/zones\"\n"
            "    file: \"%s.zone\"\n"
            "    zonefile-sync: -1\n"
            "    zonefile-load: whole\n"
            "    journal-content: none\n"
            "    semantic-checks: off\n"
            + ("zone:\n" + zones if zones else "")
        )

    def _control(self, *args: str, check: bool = True) -> int:
        result = subprocess.run(
            [KNOTC, "-s", str(self.dir / "knot.sock"), "-t", "5", *args],
            capture_output=True, text=True,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"knotc {' '.join(args)}: {result.stdout}{result.stderr}")
        return result.returncode

    def _query(self, name: str, rdtype: str) -> dns.message.Message | None:
        query = dns.message.make_query(name, rdtype)
        try:
            return dns.query.udp(query, "127.0.0.1", port=self.port, timeout=1)
        except (dns.exception.Timeout, OSError):
            return None

    def _rcode(self, zone: str) -> int | None:
        response = self._query(zone + ".", "SOA")
        return None if response is None else response.rcode()

    def _wait_serial(self, zone: str, serial: int) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            response = self._query(zone + ".", "SOA")
            if response is not None and response.rcode() == dns.rcode.NOERROR:
                for rrset in response.answer:
                    if rrset.rdtype == dns.rdatatype.SOA and rrset[0].serial == serial:
                        return
            time.sleep(0.02)
        raise RuntimeError(f"knotd does not serve {zone} serial {serial}: {self.log()}")


class _SilentServer:
    """UDP and TCP sockets on loopback that take queries and never answer."""

    def __init__(self) -> None:
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        port = self.udp.getsockname()[1]
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.tcp.bind(("127.0.0.1", port))
            self.tcp.listen(16)
        except OSError:
            self.tcp.close()
        self.address = f"127.0.0.1:{port}"

    def close(self) -> None:
        self.udp.close()
        self.tcp.close()

