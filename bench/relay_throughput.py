"""Relay throughput: our relay against a bare aiosmtpd server, in the same run.

Usage (from the project root, with the venv):

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/smtpplus .venv/bin/python bench/relay_throughput.py
    .venv/bin/python bench/relay_throughput.py --processes 2      # two relay processes
    .venv/bin/python bench/relay_throughput.py --clients 20 --messages 50 --size 2048

What it does:

1. Migrates the configured database (DATABASE_URL, default the SQLite file under var/)
   and creates a throw-away account with one SMTP+ user authorized for `bench.test`
   (deleted at the end with everything it sent, unless --keep).
2. Starts two servers as child processes, each on a free 127.0.0.1 port:
   - the ceiling for this stack: a bare aiosmtpd server that accepts any AUTH and
     discards every message;
   - our relay: `manage.py runrelay --no-deliver [--processes N]` on the same database.
3. Drives each with `--clients` concurrent authenticated clients sending `--size`-byte
   messages, in two modes:
   - kept-open: one session per client, `--messages` messages each;
   - new connection per message: connect, EHLO, AUTH, send, QUIT for every message.
   The clients run in `--client-processes` processes of their own (the same load
   generator for both servers, not sharing a process with either); the two servers
   take turns, `--rounds` times, and the rounds are added up. The client is a minimal
   one written here (`LeanSMTP`: the full dialogue, one command at a time, every reply
   checked) so that on a small machine the load generator takes as little of the CPU
   as it can; `--client aiosmtplib` drives both servers with aiosmtplib instead.
4. Prints messages/second, p50/p99 latency per message (for a new connection: the
   whole connect-to-QUIT time), the server's own CPU time per message (the relay's
   processes; not PostgreSQL's, which is printed below the table), the load
   generator's CPU time per message, and the ratio relay/bare for each mode.

The machine is shared and noisy: compare the ratios of one run, not absolute figures
from different runs. On a small machine the load generator, the servers and
PostgreSQL share the cores: the CPU per message is the figure that noise moves least.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

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


# --- the bare server (child process) -------------------------------------------------
def run_bare_server(port: int) -> None:
    from aiosmtpd.smtp import SMTP, AuthResult

    class Discard:
        async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
            return "250 2.0.0 Ok: discarded"

    def accept_any(server, session, envelope, mechanism, auth_data):  # noqa: ANN001
        return AuthResult(success=True)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        handler = Discard()
        server = await loop.create_server(
            lambda: SMTP(handler, hostname="bare.test", ident="bare", authenticator=accept_any,
                         auth_require_tls=False, enable_SMTPUTF8=True, loop=loop),
            "127.0.0.1", port, backlog=512,
        )
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        async with server:
            await stop.wait()

    import logging

    logging.getLogger("mail.log").setLevel(logging.ERROR)
    asyncio.run(main())


# --- the load --------------------------------------------------------------------------
@dataclass
class Result:
    messages: int
    seconds: float
    latencies: list[float]
    errors: int
    cpu: float = 0.0  # the server's CPU seconds
    client_cpu: float = 0.0  # the load generator's CPU seconds

    def __add__(self, other: Result) -> Result:
        return Result(self.messages + other.messages, self.seconds + other.seconds,
                      self.latencies + other.latencies, self.errors + other.errors,
                      self.cpu + other.cpu, self.client_cpu + other.client_cpu)

    @property
    def cpu_per_message(self) -> float:
        return self.cpu / self.messages * 1000 if self.messages else 0.0

    @property
    def client_cpu_per_message(self) -> float:
        return self.client_cpu / self.messages * 1000 if self.messages else 0.0

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


class LeanSMTP:
    """The lightest SMTP client that still speaks the protocol properly, so that the load
    generator leaves the cores to the servers: EHLO, AUTH PLAIN with an initial response,
    MAIL, RCPT, DATA (dot-stuffed), QUIT, one command at a time and every reply read in
    full (neither server offers PIPELINING). A reply other than the expected one raises."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, port: int) -> LeanSMTP:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        await client.expect(220)
        await client.command(b"EHLO bench.test\r\n", 250)
        return client

    async def expect(self, code: int) -> None:
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("connection closed")
            if line[3:4] != b"-":
                break
        if int(line[:3]) != code:
            raise SmtpReplyError(line.decode(errors="replace").strip())

    async def command(self, line: bytes, code: int) -> None:
        self.writer.write(line)
        await self.expect(code)

    async def login(self, username: str, password: str) -> None:
        token = base64.b64encode(f"\0{username}\0{password}".encode())
        await self.command(b"AUTH PLAIN " + token + b"\r\n", 235)

    async def sendmail(self, sender: str, recipient: str, stuffed: bytes) -> None:
        await self.command(f"MAIL FROM:<{sender}>\r\n".encode(), 250)
        await self.command(f"RCPT TO:<{recipient}>\r\n".encode(), 250)
        await self.command(b"DATA\r\n", 354)
        await self.command(stuffed + b".\r\n", 250)

    async def quit(self) -> None:
        await self.command(b"QUIT\r\n", 221)
        self.writer.close()


class SmtpReplyError(Exception):
    pass


def dot_stuffed(body: bytes) -> bytes:
    """DATA as sent on the wire: leading dots doubled, ending with CRLF."""
    stuffed = re.sub(rb"(?m)^\.", b"..", body)
    return stuffed if stuffed.endswith(b"\r\n") else stuffed + b"\r\n"


async def drive(port: int, username: str, password: str, clients: int, messages: int,
                body: bytes, kept_open: bool, client: str = "lean") -> Result:
    if client == "aiosmtplib":
        return await drive_aiosmtplib(port, username, password, clients, messages, body,
                                      kept_open)
    latencies: list[float] = []
    errors = 0
    stuffed = dot_stuffed(body)

    async def kept(_: int) -> None:
        nonlocal errors
        smtp = await LeanSMTP.connect(port)
        await smtp.login(username, password)
        for i in range(messages):
            t0 = time.perf_counter()
            try:
                await smtp.sendmail(SENDER, f"rcpt{i}@example.net", stuffed)
            except SmtpReplyError:
                errors += 1
                await smtp.command(b"RSET\r\n", 250)
                continue
            latencies.append(time.perf_counter() - t0)
        await smtp.quit()

    async def send_one(i: int) -> None:
        smtp = await LeanSMTP.connect(port)
        await smtp.login(username, password)
        await smtp.sendmail(SENDER, f"rcpt{i}@example.net", stuffed)
        await smtp.quit()

    async def reconnecting(_: int) -> None:
        nonlocal errors
        errors += await connection_per_message(
            messages, send_one, (SmtpReplyError, ConnectionError), latencies)

    seconds = await all_clients(kept if kept_open else reconnecting, clients)
    return Result(len(latencies), seconds, latencies, errors)


async def connection_per_message(
    messages: int, send_one: Callable[[int], Awaitable[None]],
    failures: tuple[type[BaseException], ...], latencies: list[float],
) -> int:
    """Send `messages` messages with `send_one(i)` (a whole session each), timing each;
    give the number that failed."""
    errors = 0
    for i in range(messages):
        t0 = time.perf_counter()
        try:
            await send_one(i)
        except failures:
            errors += 1
            continue
        latencies.append(time.perf_counter() - t0)
    return errors


async def all_clients(worker: Callable[[int], Awaitable[None]], clients: int) -> float:
    """Run `clients` workers at once; give the seconds they took."""
    start = time.perf_counter()
    await asyncio.gather(*(worker(c) for c in range(clients)))
    return time.perf_counter() - start


async def drive_aiosmtplib(port: int, username: str, password: str, clients: int,
                           messages: int, body: bytes, kept_open: bool) -> Result:
    import aiosmtplib

    latencies: list[float] = []
    errors = 0

    async def one_session(n: int) -> None:
        nonlocal errors
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60) as smtp:
            await smtp.login(username, password)
            for i in range(n):
                t0 = time.perf_counter()
                errs, _ = await smtp.sendmail(SENDER, [f"rcpt{i}@example.net"], body)
                latencies.append(time.perf_counter() - t0)
                errors += len(errs)

    async def kept(_: int) -> None:
        await one_session(messages)

    async def send_one(i: int) -> None:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=60)
        await smtp.connect()
        await smtp.login(username, password)
        await smtp.sendmail(SENDER, [f"rcpt{i}@example.net"], body)
        await smtp.quit()

    async def reconnecting(_: int) -> None:
        nonlocal errors
        errors += await connection_per_message(
            messages, send_one, (aiosmtplib.SMTPException,), latencies)

    seconds = await all_clients(kept if kept_open else reconnecting, clients)
    return Result(len(latencies), seconds, latencies, errors)


def drive_at(start_at: float, port: int, username: str, password: str, clients: int,
             messages: int, body: bytes, kept_open: bool,
             client: str) -> tuple[Result, float, float]:
    """One client process's share of a round, started at the wall-clock `start_at`."""
    time.sleep(max(0.0, start_at - time.time()))
    began, cpu = time.time(), time.process_time()
    result = asyncio.run(drive(port, username, password, clients, messages, body, kept_open,
                               client))
    result.client_cpu = time.process_time() - cpu
    return result, began, time.time()


def drive_processes(pool: ProcessPoolExecutor, processes: int, port: int, username: str,
                    password: str, clients: int, messages: int, body: bytes,
                    kept_open: bool, client: str) -> Result:
    """Split `clients` over the pool's processes; all start together."""
    start_at = time.time() + 0.2
    shares = [clients // processes + (1 if i < clients % processes else 0)
              for i in range(processes)]
    futures = [pool.submit(drive_at, start_at, port, username, password, n, messages, body,
                           kept_open, client) for n in shares if n]
    parts = [f.result() for f in futures]
    seconds = max(end for _, _, end in parts) - min(began for _, began, _ in parts)
    latencies = [x for r, _, _ in parts for x in r.latencies]
    return Result(len(latencies), seconds, latencies, sum(r.errors for r, _, _ in parts),
                  client_cpu=sum(r.client_cpu for r, _, _ in parts))


def _cpu_seconds(counted: Callable[[int, int, str], bool]) -> float:
    """CPU time, from /proc, of the processes for which `counted(pid, parent pid, command
    name)` is true."""
    ticks = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
        except OSError:  # the process has ended
            continue
        fields = tail.split()  # fields[1]: the parent's pid; 11 and 12: user and system time
        if counted(int(entry), int(fields[1]), head.split("(", 1)[1]):
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children (forked relay workers)."""
    return _cpu_seconds(lambda p, parent, _: pid in (p, parent))


def postgres_cpu_seconds() -> float:
    """CPU time of all PostgreSQL processes on the machine."""
    return _cpu_seconds(lambda _p, _parent, name: name in ("postgres", "postmaster"))


# --- orchestration ---------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--messages", type=int, default=50, help="per client and mode")
    parser.add_argument("--size", type=int, default=2048, help="message size in bytes")
    parser.add_argument("--processes", type=int, default=1, help="relay processes")
    parser.add_argument("--client-processes", type=int, default=2,
                        help="processes the clients are spread over")
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating rounds per server and mode (results are summed)")
    parser.add_argument("--client", choices=("lean", "aiosmtplib"), default="lean",
                        help="the load generator's SMTP client: a minimal one (default, "
                             "so the servers get the cores) or aiosmtplib")
    parser.add_argument("--keep", action="store_true", help="keep the bench account")
    args = parser.parse_args()

    prepare_database()
    from django.db import connection

    account_id, username, password = setup_user()
    connection.close()
    body = make_body(args.size)

    bare_port, relay_port = free_port(), free_port()
    bare = multiprocessing.get_context("spawn").Process(target=run_bare_server, args=(bare_port,))
    bare.start()
    relay = subprocess.Popen(
        # No periodic domain check: it would query the system's resolver (see end_to_end.py).
        [sys.executable, str(ROOT / "manage.py"), "runrelay", "--no-deliver", "--no-domain-check",
         "--listen", f"127.0.0.1:{relay_port}", "--processes", str(args.processes)],
        env={**os.environ, "RELAY_TLS_CERT": "", "RELAY_LISTEN_TLS": "", "LOG_LEVEL": "WARNING",
             "RELAY_MAX_CONNECTIONS_PER_IP": str(max(50, args.clients * 2))},
        cwd=ROOT,
    )
    results: dict[tuple[str, str], Result] = {}
    postgres_cpu = {"kept-open": 0.0, "new connection": 0.0}
    pool = ProcessPoolExecutor(args.client_processes, mp_context=multiprocessing.get_context("spawn"))
    try:
        wait_for_port(bare_port)
        wait_for_port(relay_port)
        time.sleep(0.5)  # forked relay workers come up
        # Client processes start and import aiosmtplib before the first round.
        list(pool.map(time.sleep, [0.1] * args.client_processes))
        # Rounds alternate between the two servers so that the noise of a shared
        # machine hits both alike.
        for _ in range(args.rounds):
            for mode, kept in (("kept-open", True), ("new connection", False)):
                for name, port, pid in (("bare aiosmtpd", bare_port, bare.pid or 0),
                                        ("SMTP+ relay", relay_port, relay.pid)):
                    cpu, pg = cpu_seconds(pid), postgres_cpu_seconds()
                    result = drive_processes(pool, args.client_processes, port, username,
                                             password, args.clients, args.messages, body, kept,
                                             args.client)
                    result.cpu = cpu_seconds(pid) - cpu
                    if name == "SMTP+ relay":
                        postgres_cpu[mode] += postgres_cpu_seconds() - pg
                    results[(mode, name)] = results[(mode, name)] + result if (
                        mode, name) in results else result
    finally:
        pool.shutdown()
        relay.send_signal(signal.SIGTERM)
        relay.wait(30)
        if bare.pid:
            os.kill(bare.pid, signal.SIGTERM)
        bare.join(10)
        if not args.keep:
            cleanup(account_id)

    from django.conf import settings

    db = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    print(f"\n{args.clients} {args.client} clients in {args.client_processes} processes, "
          f"{args.size}-byte "
          f"messages, {args.messages} per client, {args.rounds} rounds, database: {db}, "
          f"relay processes: {args.processes}, CPUs: {os.cpu_count()}\n")
    print(f"{'mode':<16}{'server':<16}{'msg/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
          f"{'cpu ms/msg':>12}{'client cpu':>12}")
    for mode in ("kept-open", "new connection"):
        for name in ("bare aiosmtpd", "SMTP+ relay"):
            r = results[(mode, name)]
            print(f"{mode:<16}{name:<16}{r.rate:>9.0f}{r.pct(0.5):>9.1f}{r.pct(0.99):>9.1f}"
                  f"{r.errors:>8}{r.cpu_per_message:>12.2f}{r.client_cpu_per_message:>12.2f}")
        ratio = results[(mode, "SMTP+ relay")].rate / max(results[(mode, "bare aiosmtpd")].rate, 1e-9)
        print(f"{mode:<16}{'ratio relay/bare':<16}{ratio:>9.2f}")
    if db == "postgresql":
        for mode, seconds in postgres_cpu.items():
            sent = max(results[(mode, "SMTP+ relay")].messages, 1)
            print(f"PostgreSQL CPU per relay message, {mode}: {seconds / sent * 1000:.2f} ms "
                  "(all PostgreSQL processes on the machine)")
    failed = sum(r.errors for r in results.values())
    if failed:
        raise SystemExit(f"{failed} messages were not accepted: the figures are not valid")


if __name__ == "__main__":
    main()
