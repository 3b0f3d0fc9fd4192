"""Send API throughput: the same messages through the send API and through SMTP, in the
same run.

Usage (from the project root, with the venv):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smtpplus_sendapi_bench \\
        .venv/bin/python bench/send_api.py [--clients 8] [--messages 50] [--workers 2]

What it does:

1. Migrates the configured database and creates a throw-away account with one SMTP+
   user authorized for `bench.test` and a send key for it (deleted at the end with
   everything it sent, unless --keep).
2. Starts, as child processes on free 127.0.0.1 ports, the relay
   (`manage.py runrelay --no-deliver`) and the console as in production (gunicorn,
   `--workers` workers of `--threads` threads, API_RATE_LIMIT=0 so the per-key limit
   does not cap it).
3. Sends `--clients` × `--messages` messages of `--size` bytes each way, clients in
   threads of this process: over SMTP one kept-open session per client (AUTH once),
   and a new connection and login per message; over the API one request (and
   connection) per message to POST /api/v1/messages with
   JSON, and to POST /api/v1/messages/raw with the bytes.
4. Checks that every message was stored (one Message row each) and prints messages/s,
   p50/p99 latency, each mode's rate as a ratio of SMTP's kept-open rate, and the CPU
   time per message of the server (the relay's processes for SMTP, the console's for the
   API) and of the PostgreSQL backends of the database (from /proc; a backend that ends
   during a mode is not counted, so that column errs low).

The machine is shared and noisy: compare the ratios of one run, not absolute figures
from different runs. On a machine whose cores are all busy the rates follow the CPU
each message costs, which the CPU columns show directly.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import smtplib
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from urllib.parse import urlencode

from common import (
    ROOT,
    SENDER,
    cleanup,
    free_port,
    make_body,
    prepare_database,
    setup_user,
    wait_for_port,
)

RCPT = "rcpt@example.net"


def run_clients(clients: int, messages: int, send_one: Callable[[int], Callable[[], None]]
                ) -> tuple[float, list[float]]:
    """Each client `i` gets `send = send_one(i)` and calls it `messages` times; returns
    (elapsed seconds, every call's latency)."""
    latencies: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    start_line = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        try:
            send = send_one(i)
            start_line.wait()
            mine = []
            for _ in range(messages):
                t = time.perf_counter()
                send()
                mine.append(time.perf_counter() - t)
            with lock:
                latencies.extend(mine)
        except BaseException as exc:  # reported below, the run fails
            errors.append(exc)
            start_line.abort()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    try:
        start_line.wait()
    except threading.BrokenBarrierError:
        pass
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    if errors:
        raise SystemExit(f"a client failed: {errors[0]!r}")
    return elapsed, latencies


def cpu_seconds(counted: Callable[[int, int, str], bool]) -> float:
    """CPU time, from /proc, of the processes for which `counted(pid, parent pid, command
    line)` is true."""
    return sum(cpu_by_process(counted).values())


def cpu_by_process(counted: Callable[[int, int, str], bool]) -> dict[int, float]:
    """`cpu_seconds()` per process id."""
    ticks: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                tail = f.read().rsplit(")", 1)[1]
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # the process has ended
            continue
        fields = tail.split()  # fields[1]: the parent's pid; 11 and 12: user and system time
        if counted(int(entry), int(fields[1]), command):
            ticks[int(entry)] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return ticks


def tree_cpu(pid: int) -> float:
    """CPU time of a process and its children (gunicorn's workers)."""
    return cpu_seconds(lambda p, parent, _: pid in (p, parent))


def database_cpu(name: str) -> dict[int, float]:
    """CPU time of each PostgreSQL backend serving database `name` now."""
    return cpu_by_process(lambda _p, _parent, command: command.startswith("postgres: ")
                          and f" {name} " in command)


def database_cpu_since(before: dict[int, float], name: str) -> float:
    """The CPU time the backends of database `name` used since `before`: what the
    backends that are still there used (all of it for new ones); a backend that ended in
    between is not counted, so this errs low."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in database_cpu(name).items())


def smtp_kept_open(port: int, username: str, password: str, body: bytes):
    def setup(i: int) -> Callable[[], None]:
        smtp = smtplib.SMTP("127.0.0.1", port, timeout=60)
        smtp.login(username, password)

        def send() -> None:
            refused = smtp.sendmail(SENDER, [RCPT], body)
            assert not refused, refused
        return send
    return setup


def smtp_new_connection(port: int, username: str, password: str, body: bytes):
    def setup(i: int) -> Callable[[], None]:
        def send() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
                smtp.login(username, password)
                assert not smtp.sendmail(SENDER, [RCPT], body)
        return send
    return setup


def api_post(port: int, path: str, payload: bytes, headers: dict[str, str]):
    def setup(i: int) -> Callable[[], None]:
        def send() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                conn.request("POST", path, body=payload, headers=headers)
                answer = conn.getresponse()
                text = answer.read()
                assert answer.status == 202, (answer.status, text[:300])
            finally:
                conn.close()
        return send
    return setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--messages", type=int, default=50, help="per client and mode")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per gunicorn worker (more than 1: the gthread worker)")
    parser.add_argument("--keep", action="store_true", help="keep the account and messages")
    args = parser.parse_args()

    database = prepare_database()
    from django.db import connection

    from accounts.actions.api_keys import create_api_key
    from accounts.models import Account, SmtpUser
    from relay.models import Message

    account_id, username, password = setup_user()
    user = SmtpUser.objects.get(username=username)
    _, key = create_api_key(Account.objects.get(pk=account_id), name="bench", smtp_user=user)
    body = make_body(args.size)
    text = body.split(b"\r\n\r\n", 1)[1].decode()

    relay_port, console_port = free_port(), free_port()
    env = {**os.environ, "RELAY_LISTEN": f"127.0.0.1:{relay_port}", "RELAY_TLS_CERT": "",
           "RELAY_LISTEN_TLS": "", "LOG_LEVEL": "WARNING", "API_RATE_LIMIT": "0",
           "DEBUG": "false", "RELAY_MAX_CONNECTIONS_PER_IP": str(max(50, args.clients * 2))}
    # No periodic domain check: it would query the system's resolver (see end_to_end.py).
    relay = subprocess.Popen([sys.executable, str(ROOT / "manage.py"), "runrelay",
                              "--no-deliver", "--no-domain-check"], env=env, cwd=ROOT)
    console = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "smtpplus.wsgi:application", "--bind",
         f"127.0.0.1:{console_port}", "--workers", str(args.workers), "--threads",
         str(args.threads), "--log-level", "warning"], env=env, cwd=ROOT)
    try:
        # Generous: on a busy machine the relay and the console take a while to start.
        wait_for_port(relay_port, timeout=180)
        wait_for_port(console_port, timeout=180)
        auth = {"Authorization": f"Bearer {key}"}
        json_body = json.dumps({"from": f"Bench <{SENDER}>", "to": [RCPT], "subject": "bench",
                                "text": text}).encode()
        raw_path = "/api/v1/messages/raw?" + urlencode({"from": SENDER, "to": RCPT})
        modes = [
            ("SMTP, kept-open sessions", smtp_kept_open(relay_port, username, password, body)),
            ("SMTP, new connection per message",
             smtp_new_connection(relay_port, username, password, body)),
            ("API, POST /messages (JSON)",
             api_post(console_port, "/api/v1/messages", json_body,
                      {**auth, "Content-Type": "application/json"})),
            ("API, POST /messages/raw",
             api_post(console_port, raw_path, body, {**auth, "Content-Type": "message/rfc822"})),
        ]
        # Warm every console worker (imports, database connection) before timing.
        warm = api_post(console_port, "/api/v1/messages", json_body,
                        {**auth, "Content-Type": "application/json"})(0)
        for _ in range(args.workers * 3):
            warm()
        before = Message.objects.filter(account_id=account_id).count()
        db_name = str(connection.settings_dict["NAME"])
        results = []
        for name, setup in modes:
            server = relay if name.startswith("SMTP") else console
            cpu, db_cpu = tree_cpu(server.pid), database_cpu(db_name)
            elapsed, latencies = run_clients(args.clients, args.messages, setup)
            cpu, db_cpu = tree_cpu(server.pid) - cpu, database_cpu_since(db_cpu, db_name)
            results.append((name, len(latencies) / elapsed, latencies, cpu, db_cpu))
        stored = Message.objects.filter(account_id=account_id).count() - before
        expected = len(modes) * args.clients * args.messages
        if stored != expected:
            raise SystemExit(f"{stored} messages stored, {expected} sent")
    finally:
        for proc in (console, relay):
            proc.terminate()
        for proc in (console, relay):
            proc.wait(timeout=30)
        if not args.keep:
            cleanup(account_id)

    print(f"\nsend API vs SMTP on {database}: {args.clients} clients × {args.messages} "
          f"messages of {args.size} bytes per mode, console with {args.workers} workers × "
          f"{args.threads} threads; "
          f"all {expected} messages stored")
    baseline = results[0][1]
    print(f"{'mode':36} {'msg/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'vs SMTP kept-open':>18} "
          f"{'server CPU ms/msg':>18} {'database CPU ms/msg':>20}")
    for name, rate, latencies, cpu, db_cpu in results:
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(f"{name:36} {rate:8.0f} {statistics.median(ordered) * 1000:8.1f} "
              f"{p99 * 1000:8.1f} {rate / baseline:18.2f} {cpu / len(ordered) * 1000:18.2f} "
              f"{db_cpu / len(ordered) * 1000:20.2f}")
    print("server CPU: the relay's processes for SMTP, the console's (gunicorn) for the API; "
          "database CPU: the PostgreSQL backends of this database")


if __name__ == "__main__":
    main()
