"""What the benchmarks share: the project on the import path, the database, a throw-away
account, ports and a test message.

Importing this module puts the project root on `sys.path` and selects the project's
settings, so a script run as `python bench/<name>.py` can set Django up afterwards.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smtpplus.settings")

SENDER = "bench@bench.test"


def ensure_database(*, meant_for_postgres: bool = True) -> str:
    """Create the PostgreSQL database named in DATABASE_URL if it does not exist yet;
    give the database's kind ("postgresql" or "sqlite")."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        if meant_for_postgres:
            print("warning: DATABASE_URL is not PostgreSQL; this bench is meant for PostgreSQL",
                  file=sys.stderr)
        return "sqlite"
    import environ
    import psycopg

    cfg = environ.Env.db_url_config(url)
    params = {"host": cfg.get("HOST") or None, "port": cfg.get("PORT") or None,
              "user": cfg.get("USER") or None, "password": cfg.get("PASSWORD") or None}
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                            [cfg["NAME"]]).fetchone():
            conn.execute(f'CREATE DATABASE "{cfg["NAME"]}"')
            print(f"created database {cfg['NAME']}")
    return "postgresql"


def prepare_database(*, meant_for_postgres: bool = True) -> str:
    """Create the database if needed, set Django up and migrate; give the database's kind."""
    database = ensure_database(meant_for_postgres=meant_for_postgres)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return database


def setup_user() -> tuple[int, str, str]:
    """A throw-away account with one SMTP+ user authorized for bench.test, a sending
    domain of the account marked verified by an operator: (account id, username,
    password). The database must be migrated."""
    from accounts.actions.domains import add_domain, force_verify
    from accounts.actions.smtp_users import create_account, create_smtp_user
    from accounts.models import AuthorizedDomain, SendingDomain

    # A run that crashed before its cleanup left its account owning bench.test.
    SendingDomain.objects.filter(domain="bench.test", account__name__startswith="Bench ").delete()
    account, _, _ = create_account(f"Bench {int(time.time())}", f"bench-{os.getpid()}@bench.test")
    user, password = create_smtp_user(account, name="bench")
    force_verify(add_domain(account, "bench.test"))
    AuthorizedDomain.objects.create(smtp_user=user, domain="bench.test")
    return account.pk, user.username, password


def cleanup(account_id: int) -> None:
    """Delete the account `setup_user` made, everything it sent, and its owner."""
    from django.contrib.auth import get_user_model

    from accounts.models import Account, Membership

    account = Account.objects.get(pk=account_id)
    owners = list(Membership.objects.filter(account=account).values_list("user_id", flat=True))
    account.delete()
    get_user_model().objects.filter(pk__in=owners, memberships__isnull=True).delete()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port} after {timeout} s")


def make_body(size: int) -> bytes:
    """A plain message of about `size` bytes from SENDER, CRLF line endings."""
    head = (f"From: Bench <{SENDER}>\r\nTo: rcpt@example.net\r\nSubject: bench\r\n"
            "Message-ID: <bench@bench.test>\r\n\r\n").encode()
    line = b"x" * 76 + b"\r\n"
    body = head
    while len(body) + len(line) <= size:
        body += line
    return body + b"y" * max(0, size - len(body) - 2) + b"\r\n"
