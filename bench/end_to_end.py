"""End to end: clients → relay → local sink upstream, ours and Postfix's, in one run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smtpplus_bench \\
        .venv/bin/python bench/end_to_end.py --processes 2 [--clients 20] [--messages 100]

1. A sink upstream that accepts and discards every message and counts them: Postfix's
   `smtp-sink` if installed (/usr/sbin/smtp-sink), else an aiosmtpd sink.
2. Our relay: `manage.py runrelay --processes N` (which also runs `manage.py deliver`)
   on DATABASE_URL (PostgreSQL is the point; the database is created if missing), with
   RELAY_UPSTREAM pointing at the sink.
3. If Postfix is installed: a Postfix instance in a private temp directory (its own
   main.cf/master.cf, `postfix -c DIR start`), relaying to the same sink, with SASL AUTH
   answered by a minimal Dovecot-protocol authentication server this script runs (no
   Dovecot needed). Its queue is fsync'd as usual.
4. Each system gets the same load: `--clients` concurrent clients, each logging in
   (AUTH PLAIN) once and sending `--messages` `--size`-byte messages on a kept-open
   session, one recipient each. Measured from the first message:
   accepted/s (all clients done), delivered/s (the sink has them all) and the time from
   the last acceptance until the queue is empty.

The machine is shared and noisy: compare the ratios printed by one run.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import re
import shutil
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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

from tests.postfix import master_cf  # the same private Postfix set-up as the tests

SMTP_SINK = "/usr/sbin/smtp-sink"
POSTFIX = "/usr/sbin/postfix"


# --- the sink --------------------------------------------------------------------------
class Sink:
    """A discarding upstream that counts the messages it received."""

    def __init__(self) -> None:
        self.port = free_port()
        self.count = 0
        self.kind = "smtp-sink" if os.path.exists(SMTP_SINK) else "aiosmtpd sink"
        if self.kind == "smtp-sink":
            self.proc = subprocess.Popen(
                [SMTP_SINK, "-c", "-u", "postfix", f"127.0.0.1:{self.port}", "1024"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
        else:
            self.proc = subprocess.Popen(
                [sys.executable, __file__, "--aiosmtpd-sink", str(self.port)],
                stdout=subprocess.PIPE,
            )
        threading.Thread(target=self._read_counter, daemon=True).start()
        wait_for_port(self.port)

    def _read_counter(self) -> None:
        # smtp-sink -c writes "sess=N quit=N mesg=N\r" after each event.
        assert self.proc.stdout is not None
        buf = b""
        while chunk := self.proc.stdout.read1(4096):
            buf = (buf + chunk)[-200:]
            found = re.findall(rb"mesg=(\d+)", buf)
            if found:
                self.count = int(found[-1])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def run_aiosmtpd_sink(port: int) -> None:
    from aiosmtpd.smtp import SMTP

    count = 0

    class Count:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
            nonlocal count
            count += 1
            sys.stdout.write(f"sess=0 quit=0 mesg={count}\r")
            sys.stdout.flush()
            return "250 2.0.0 Ok: discarded"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        await loop.create_server(
            lambda: SMTP(Count(), hostname="sink", ident="sink"), "127.0.0.1", port
        )
        await asyncio.Event().wait()

    asyncio.run(main())


# --- load ------------------------------------------------------------------------------
@dataclass
class Result:
    system: str
    messages: int
    accept_seconds: float
    deliver_seconds: float
    errors: int

    @property
    def drain_seconds(self) -> float:
        return self.deliver_seconds - self.accept_seconds


async def send_load(port: int, username: str, password: str, clients: int, messages: int,
                    body: bytes) -> int:
    import aiosmtplib

    errors = 0

    async def client(c: int) -> None:
        nonlocal errors
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120,
                                   start_tls=False) as smtp:
            await smtp.login(username, password)
            for i in range(messages):
                try:
                    await smtp.sendmail(SENDER, [f"c{c}m{i}@example.net"], body)
                except aiosmtplib.SMTPException:
                    errors += 1

    await asyncio.gather(*(client(c) for c in range(clients)))
    return errors


def measure(system: str, port: int, sink: Sink, username: str, password: str,
            args: argparse.Namespace, body: bytes) -> Result:
    total = args.clients * args.messages
    before = sink.count
    start = time.perf_counter()
    errors = asyncio.run(send_load(port, username, password, args.clients, args.messages, body))
    accepted = time.perf_counter() - start
    deadline = time.monotonic() + args.timeout
    while sink.count - before < total - errors:
        if time.monotonic() > deadline:
            print(f"{system}: only {sink.count - before} of {total} delivered after "
                  f"{args.timeout} s", file=sys.stderr)
            break
        time.sleep(0.02)
    delivered = time.perf_counter() - start
    return Result(system, total - errors, accepted, delivered, errors)


# --- our relay ---------------------------------------------------------------------------
def run_ours(sink: Sink, username: str, password: str, args: argparse.Namespace,
             body: bytes) -> Result:
    port = free_port()
    env = {
        **os.environ,
        "RELAY_TLS_CERT": "", "RELAY_LISTEN_TLS": "", "LOG_LEVEL": "WARNING",
        "RELAY_UPSTREAM": f"smtp://127.0.0.1:{sink.port}",
        "DELIVERY_CONCURRENCY": str(args.concurrency),
        "RELAY_MAX_CONNECTIONS_PER_IP": str(max(50, args.clients * 2)),
    }
    # No periodic domain check: with SMTPPLUS_DNS_RESOLVERS unset it would query the
    # system's resolver for the benchmark's domains, and nothing here is about DNS.
    relay = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "runrelay", "--listen", f"127.0.0.1:{port}",
         "--processes", str(args.processes), "--no-domain-check"],
        env=env, cwd=ROOT,
    )
    try:
        wait_for_port(port)
        time.sleep(1.0)  # forked relay processes and the delivery worker come up
        return measure(f"SMTP+ (--processes {args.processes})", port, sink, username,
                       password, args, body)
    finally:
        relay.send_signal(signal.SIGTERM)
        try:
            relay.wait(30)
        except subprocess.TimeoutExpired:
            relay.kill()


# --- Postfix -----------------------------------------------------------------------------
class DovecotAuth(socketserver.ThreadingTCPServer):
    """Just enough of Dovecot's authentication protocol for Postfix's smtpd
    (smtpd_sasl_type = dovecot): PLAIN and LOGIN against one username/password."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, username: str, password: str) -> None:
        self.username, self.password = username, password
        super().__init__(("127.0.0.1", 0), _DovecotHandler)
        self.port = self.server_address[1]
        threading.Thread(target=self.serve_forever, daemon=True).start()


class _DovecotHandler(socketserver.StreamRequestHandler):
    server: DovecotAuth

    def handle(self) -> None:
        self.wfile.write(b"VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\n"
                         b"SPID\t1\nCUID\t1\nCOOKIE\t" + b"0" * 32 + b"\nDONE\n")
        login: dict[str, list[str]] = {}
        for line in self.rfile:
            parts = line.decode().rstrip("\n").split("\t")
            if parts[0] == "AUTH":
                rid, mech = parts[1], parts[2].upper()
                params = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
                if mech == "PLAIN" and "resp" in params:
                    self.check(rid, base64.b64decode(params["resp"]).split(b"\0")[1:])
                elif mech == "PLAIN":
                    login[rid] = ["PLAIN"]
                    self.reply(f"CONT\t{rid}\t")
                else:
                    login[rid] = ["LOGIN"]
                    self.reply(f"CONT\t{rid}\t{base64.b64encode(b'Username:').decode()}")
            elif parts[0] == "CONT":
                rid, data = parts[1], base64.b64decode(parts[2] if len(parts) > 2 else "")
                state = login.get(rid, ["PLAIN"])
                if state[0] == "PLAIN":
                    self.check(rid, data.split(b"\0")[1:])
                elif len(state) == 1:
                    state.append(data.decode())
                    self.reply(f"CONT\t{rid}\t{base64.b64encode(b'Password:').decode()}")
                else:
                    self.check(rid, [state[1].encode(), data])

    def check(self, rid: str, creds: list[bytes]) -> None:
        ok = len(creds) == 2 and creds[0].decode() == self.server.username and (
            creds[1].decode() == self.server.password)
        user = creds[0].decode() if creds else ""
        self.reply(f"{'OK' if ok else 'FAIL'}\t{rid}\tuser={user}")

    def reply(self, text: str) -> None:
        self.wfile.write(text.encode() + b"\n")
        self.wfile.flush()


def postfix_config(base: Path, port: int, sink_port: int, auth_port: int) -> None:
    queue, data = base / "queue", base / "data"
    queue.mkdir()
    data.mkdir()
    shutil.chown(data, "postfix", "postfix")
    main_cf = f"""
compatibility_level = 3.6
queue_directory = {queue}
data_directory = {data}
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = postfix-bench.test
mydomain = bench.test
myorigin = $myhostname
mydestination =
alias_maps =
alias_database =
local_recipient_maps =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = inet:127.0.0.1:{auth_port}
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_recipient_restrictions = permit_sasl_authenticated, reject
smtpd_tls_security_level = none
smtp_tls_security_level = none
smtpd_client_connection_count_limit = 0
smtpd_client_message_rate_limit = 0
default_process_limit = 200
maillog_file = {base / 'maillog'}
maillog_file_prefixes = {base}
"""
    (base / "main.cf").write_text(main_cf)
    (base / "master.cf").write_text(master_cf(port))


def run_postfix(sink: Sink, username: str, password: str, args: argparse.Namespace,
                body: bytes) -> Result | None:
    auth = DovecotAuth(username, password)
    base = Path(tempfile.mkdtemp(prefix="smtpplus-postfix-"))
    base.chmod(0o755)
    port = free_port()
    postfix_config(base, port, sink.port, auth.port)
    started = subprocess.run([POSTFIX, "-c", str(base), "start"], capture_output=True,
                             text=True)
    try:
        if started.returncode != 0:
            print(f"Postfix did not start: {started.stderr.strip()}", file=sys.stderr)
            return None
        wait_for_port(port)
        time.sleep(0.5)
        return measure("Postfix 3 (AUTH, fsync'd queue)", port, sink, username, password,
                       args, body)
    finally:
        subprocess.run([POSTFIX, "-c", str(base), "stop"], capture_output=True)
        time.sleep(0.5)
        auth.shutdown()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
        else:
            print(f"Postfix directory kept: {base}")


# --- main ------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--messages", type=int, default=100, help="per client")
    parser.add_argument("--size", type=int, default=2048, help="message size in bytes")
    parser.add_argument("--processes", type=int, default=2, help="relay processes")
    parser.add_argument("--concurrency", type=int, default=8, help="delivery tasks")
    parser.add_argument("--rounds", type=int, default=1,
                        help="alternating rounds per system (results are summed)")
    parser.add_argument("--timeout", type=float, default=300, help="max wait for delivery")
    parser.add_argument("--no-postfix", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the bench account/dirs")
    parser.add_argument("--aiosmtpd-sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.aiosmtpd_sink:
        run_aiosmtpd_sink(args.aiosmtpd_sink)
        return

    database = prepare_database()
    from django.db import connection

    from relay.models import PENDING_STATUSES, Recipient

    backlog = Recipient.objects.filter(status__in=PENDING_STATUSES).count()
    if backlog:
        # Our workers would deliver that backlog too, and the figures would be wrong.
        sys.exit(f"The database already has {backlog} queued or deferred recipient(s): "
                 "point DATABASE_URL at a database of its own for this benchmark.")
    account_id, username, password = setup_user()
    connection.close()
    body = make_body(args.size)
    sink = Sink()
    with_postfix = os.path.exists(POSTFIX) and not args.no_postfix and os.geteuid() == 0
    results: dict[str, list[Result]] = {}
    try:
        for _ in range(args.rounds):
            for name, run in (("ours", run_ours), ("postfix", run_postfix)):
                if name == "postfix" and not with_postfix:
                    continue
                result = run(sink, username, password, args, body)
                if result is not None:
                    results.setdefault(name, []).append(result)
    finally:
        sink.stop()
        if not args.keep:
            cleanup(account_id)

    print(f"\n{args.clients} clients (AUTH, kept-open sessions), {args.size}-byte messages, "
          f"{args.clients * args.messages} per system and round, {args.rounds} round(s); "
          f"database: {database}; sink: {sink.kind}")
    print(f"{'system':<34}{'accepted/s':>11}{'delivered/s':>12}{'queue empty after':>19}"
          f"{'errors':>8}")
    totals = {}
    for name, rounds in results.items():
        n = sum(r.messages for r in rounds)
        acc = sum(r.accept_seconds for r in rounds)
        dlv = sum(r.deliver_seconds for r in rounds)
        drain = sum(r.drain_seconds for r in rounds) / len(rounds)
        totals[name] = (n / acc, n / dlv)
        print(f"{rounds[0].system:<34}{n / acc:>11.0f}{n / dlv:>12.0f}"
              f"{drain:>17.2f} s{sum(r.errors for r in rounds):>8}")
    if "postfix" in totals:
        ours, theirs = totals["ours"], totals["postfix"]
        print(f"{'ours / Postfix':<34}{ours[0] / theirs[0]:>11.2f}{ours[1] / theirs[1]:>12.2f}")
    elif with_postfix:
        print("Postfix could not be measured (see above).")
    else:
        print("Postfix is not installed (or not running as root): no comparison.")


if __name__ == "__main__":
    main()
