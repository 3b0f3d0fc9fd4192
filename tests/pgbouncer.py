"""A real PgBouncer (Debian's `pgbouncer`) in transaction mode in front of the test database.

`PgBouncer.start(tmp_path)` writes a configuration of its own (`CONFIG`, the one the
README's scaling recipe shows: `pool_mode = transaction`, a small pool so that several
clients share each server connection), starts PgBouncer on a free port of 127.0.0.1 and
waits until it answers. `database_url()` is a DATABASE_URL for the current test database
through it, for subprocesses; `log()` is what PgBouncer wrote. A missing PgBouncer fails
the test (./test.sh installs it); nothing skips.

PgBouncer refuses to run as root: as root it is started with `-u postgres` (the user
Debian's PostgreSQL runs as).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
HOST = "127.0.0.1"

# The pooler settings the README's recipe shows. Authentication is `any` here (loopback,
# a throw-away database); a deployment uses scram-sha-256 with an auth_file or auth_query.
CONFIG = """\
[databases]
* = host={server_host} port={server_port} user={server_user}

[pgbouncer]
listen_addr = {host}
listen_port = {port}
unix_socket_dir =
auth_type = any
pool_mode = transaction
default_pool_size = {pool_size}
max_client_conn = 500
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class PgBouncer:
    def __init__(self, directory: Path, pool_size: int) -> None:
        self.dir = directory
        self.pool_size = pool_size
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start(cls, tmp_path: Path, pool_size: int = 4) -> PgBouncer:
        from django.db import connection

        if not Path(PGBOUNCER).exists():
            raise RuntimeError("PgBouncer is not installed (./test.sh installs Debian's pgbouncer)")
        s = connection.settings_dict
        bouncer = cls(tmp_path / "pgbouncer", pool_size)
        bouncer.dir.mkdir()
        bouncer.port = free_port()
        ini = bouncer.dir / "pgbouncer.ini"
        ini.write_text(CONFIG.format(
            server_host=s.get("HOST") or "127.0.0.1", server_port=s.get("PORT") or 5432,
            server_user=s.get("USER") or "postgres", host=HOST, port=bouncer.port,
            pool_size=pool_size,
        ))
        args = [PGBOUNCER, str(ini)]
        if os.getuid() == 0:
            # It reads its configuration before it switches; it logs to our stdout.
            args[1:1] = ["-u", "postgres"]
        log = (bouncer.dir / "pgbouncer.log").open("wb")
        bouncer.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + 15
        while True:
            if bouncer.proc.poll() is not None:
                raise RuntimeError(f"PgBouncer exited: {bouncer.log()}")
            try:
                with socket.create_connection((HOST, bouncer.port), timeout=1):
                    return bouncer
            except OSError:
                if time.monotonic() > deadline:
                    bouncer.stop()
                    raise RuntimeError(f"PgBouncer did not start: {bouncer.log()}") from None
                time.sleep(0.05)

    def database_url(self, **query: str) -> str:
        """DATABASE_URL of the current test database through PgBouncer."""
        from django.db import connection

        s = connection.settings_dict
        user = quote(s.get("USER") or "postgres", safe="")
        params = "&".join(f"{k}={v}" for k, v in query.items())
        return f"postgres://{user}@{HOST}:{self.port}/{s['NAME']}" + (f"?{params}" if params else "")

    def log(self) -> str:
        return (self.dir / "pgbouncer.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
