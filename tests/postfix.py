"""A real Postfix for the tests, as a client of our relay: a private instance (its own
main.cf, master.cf and queue in a temporary directory, `postfix -c DIR start`) that
accepts mail on a loopback port and relays everything to our relay as its `relayhost`,
logging in with an SMTP+ user's credentials — the way operators put SMTP+ behind their
own MTA. Needs Debian's postfix and libsasl2-modules (test.sh installs them)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

POSTFIX = "/usr/sbin/postfix"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Postfix:
    base: Path
    port: int

    def log(self) -> str:
        path = self.base / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def flush(self) -> None:
        """Ask Postfix to try its deferred mail now."""
        subprocess.run([POSTFIX, "-c", str(self.base), "flush"], capture_output=True)


def _main_cf(base: Path, port: int, relay_host: str, relay_port: int, username: str,
             password: str) -> str:
    return f"""
compatibility_level = 3.6
queue_directory = {base / 'queue'}
data_directory = {base / 'data'}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-client.test
mydomain = client.test
myorigin = $myhostname
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [{relay_host}]:{relay_port}
smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = static:{username}:{password}
smtp_sasl_security_options = noanonymous
smtp_tls_security_level = none
smtpd_tls_security_level = none
maillog_file = {base / 'maillog'}
maillog_file_prefixes = {base}
"""


def _master_cf(port: int) -> str:
    lines = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        fields = line.split()
        if line and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
            if fields[0] == "smtp" and fields[1] == "inet":
                fields[0] = f"127.0.0.1:{port}"
            fields[4] = "n"  # no chroot: the private queue has no jail set up
            line = "  ".join(fields[:8]) + ("  " + " ".join(fields[8:]) if fields[8:] else "")
        lines.append(line)
    return "\n".join(lines) + "\n"


@contextmanager
def postfix_relaying_to(relay_host: str, relay_port: int, username: str,
                        password: str) -> Iterator[Postfix]:
    base = Path(tempfile.mkdtemp(prefix="smtpplus-postfix-"))
    base.chmod(0o755)
    (base / "queue").mkdir()
    (base / "data").mkdir()
    shutil.chown(base / "data", "postfix", "postfix")
    port = _free_port()
    (base / "main.cf").write_text(
        _main_cf(base, port, relay_host, relay_port, username, password))
    (base / "master.cf").write_text(_master_cf(port))
    started = subprocess.run([POSTFIX, "-c", str(base), "start"], capture_output=True,
                             text=True)
    if started.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        raise RuntimeError(f"Postfix did not start: {started.stderr.strip()}")
    postfix = Postfix(base, port)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Postfix does not listen: {postfix.log()}") from None
                time.sleep(0.1)
        yield postfix
    finally:
        subprocess.run([POSTFIX, "-c", str(base), "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
