"""`manage.py runrelay`: serve SMTP on every configured port until SIGTERM/SIGINT.

    manage.py runrelay --listen 0.0.0.0:25,587,2525,1025-5000 --listen-tls 0.0.0.0:465
    manage.py runrelay --processes 4      # forked workers sharing the ports (SO_REUSEPORT)

Busy or forbidden ports are logged and skipped; it exits 1 only if nothing could be
bound, or if the relay's store refuses the database as configured (prepared statements
behind a pooler that mixes them up: see `relay.smtp.store_pg`). Unless --no-deliver is
given, the delivery worker (`manage.py deliver`) runs as a child process, and unless
--no-alerts, the alert sender (`manage.py sendalerts`) runs as
another, and unless --no-domain-check (or SMTPPLUS_DOMAIN_RECHECK=false), the periodic
check of the sending domains
(`manage.py domain check --due --loop`, every SMTPPLUS_DOMAIN_RECHECK_INTERVAL per
domain) as a third: each is its own process, so a slow webhook or a slow DNS server never
holds up a delivery and a crash of one leaves the others running. All are stopped with
the relay, and end with this process however it ends (see smtpplus/lifetime.py).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import get_commands
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connections

from relay.listen import ListenSpecError, parse_listen
from relay.smtp.server import NothingBound, RelayConfig, RelayServer, cancel_remaining_tasks
from relay.smtp.store import StoreUnusable
from smtpplus import metrics
from smtpplus.lifetime import die_with_parent, start_child, watch_parent
from smtpplus.metrics import check_metrics_address

log = logging.getLogger("relay.runrelay")
DELIVER_COMMAND = Path(__file__).with_name("deliver.py")
MANAGE = Path(settings.BASE_DIR) / "manage.py"
DATABASE_UNUSABLE = 2  # serve()'s status when the store refused the database


def serve(config: RelayConfig, metrics_listen: str = "", index: int = 0) -> int:
    """Run one relay in this process until SIGTERM/SIGINT. Returns the exit status.
    `metrics_listen`: where to serve its metrics (the `index`-th relay process of a
    forked group on that port + `index`)."""
    metrics.serve(metrics_listen, "relay", offset=index)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = RelayServer(config, loop)
    try:
        try:
            listeners = loop.run_until_complete(server.start())
        except NothingBound as exc:
            log.error("%s (RELAY_LISTEN=%r, RELAY_LISTEN_TLS=%r)", exc, config.listen,
                      config.listen_tls)
            server.db_threads.close()
            return 1
        except StoreUnusable as exc:
            log.error("the relay cannot use its database: %s", exc)
            loop.run_until_complete(server.store.close())
            server.db_threads.close()
            return DATABASE_UNUSABLE
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        ports = ", ".join(f"{x.host}:{x.port}" + ("" if x.tls == "none" else f" ({x.tls})")
                          for x in listeners)
        log.info("relay %s listening on %s", server.node_id, ports)
        loop.run_until_complete(stop.wait())
        log.info("relay %s stopping", server.node_id)
        loop.run_until_complete(server.stop())
        loop.run_until_complete(cancel_remaining_tasks())
        return 0
    finally:
        loop.close()


def serve_forked(config: RelayConfig, processes: int, metrics_listen: str = "") -> int:
    """Fork `processes` relays that share the ports; wait for them all."""
    connections.close_all()  # never share a database connection across fork()
    children: list[int] = []
    parent = os.getpid()
    for index in range(processes):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            status = 1
            try:
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                die_with_parent(parent)
                if config.node_name:  # RELAY_NODE_NAME names the group: one name each
                    config = dataclasses.replace(config, node_name=f"{config.node_name}-{index + 1}")
                status = serve(config, metrics_listen, index)
            except BaseException:
                log.exception("relay worker failed")
            finally:
                logging.shutdown()
                os._exit(status)
        children.append(pid)

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    statuses = []
    for child in children:
        _, status = os.waitpid(child, 0)
        statuses.append(os.waitstatus_to_exitcode(status))
    if any(s == 0 for s in statuses):
        return 0
    return DATABASE_UNUSABLE if DATABASE_UNUSABLE in statuses else 1


class Command(BaseCommand):
    help = "Run the SMTP relay (and, unless told not to, the delivery worker and alert sender)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--listen", default=None,
                            help="HOST:PORTS with STARTTLS when a certificate is set, e.g. "
                                 "0.0.0.0:25,587,2525,1025-5000 (default: RELAY_LISTEN)")
        parser.add_argument("--listen-tls", default=None,
                            help="HOST:PORTS with implicit TLS, e.g. 0.0.0.0:465 "
                                 "(default: RELAY_LISTEN_TLS)")
        parser.add_argument("--processes", type=int, default=1,
                            help="relay processes sharing the ports (SO_REUSEPORT)")
        parser.add_argument("--grace", type=float, default=10.0,
                            help="seconds sessions in flight get to finish on stop")
        parser.add_argument("--no-deliver", action="store_true",
                            help="do not start the delivery worker")
        parser.add_argument("--no-domain-check", action="store_true",
                            help="do not start the periodic check of the sending domains")
        parser.add_argument("--no-alerts", action="store_true",
                            help="do not start the alert sender")
        parser.add_argument("--metrics", default=settings.METRICS_RELAY_LISTEN,
                            metavar="HOST:PORT",
                            help="serve Prometheus metrics there (with --processes N, on "
                                 "PORT, PORT+1, …; default: METRICS_RELAY_LISTEN)")

    def handle(self, *args: Any, **options: Any) -> None:
        watch_parent()
        overrides: dict[str, Any] = {"stop_grace": options["grace"]}
        if options["listen"] is not None:
            overrides["listen"] = options["listen"]
        if options["listen_tls"] is not None:
            overrides["listen_tls"] = options["listen_tls"]
        processes = options["processes"]
        if processes < 1:
            raise CommandError("--processes must be at least 1")
        if processes > 1:
            overrides["reuse_port"] = True
        config = RelayConfig.from_settings(**overrides)
        try:
            parse_listen(config.listen)
            parse_listen(config.listen_tls)
        except ListenSpecError as exc:
            raise CommandError(f"bad listen address: {exc}") from None
        check_metrics_address(options["metrics"])
        children: list[subprocess.Popen[bytes] | None] = []
        if not options["no_deliver"]:
            children.append(start_deliver())
        if not options["no_alerts"]:
            children.append(start_sendalerts())
        if options["no_domain_check"] or not settings.SMTPPLUS_DOMAIN_RECHECK:
            log.info("the periodic check of the sending domains is off (%s)",
                     "--no-domain-check" if options["no_domain_check"]
                     else "SMTPPLUS_DOMAIN_RECHECK=false")
        else:
            # Its own process: a DNS lookup that hangs there until SMTPPLUS_DNS_TIMEOUT
            # holds no lock the relay waits for (the check reads DNS outside its
            # transactions) and never reaches the event loop that accepts mail.
            children.append(start_domain_check())
        try:
            status = (serve(config, options["metrics"]) if processes == 1
                      else serve_forked(config, processes, options["metrics"]))
        finally:
            for child in children:
                stop_child(child)
        if status == DATABASE_UNUSABLE:
            raise CommandError("the relay cannot use its database as configured (see the log above)")
        if status:
            raise CommandError("the relay could not listen on any port (see the log above)")


def start_deliver() -> subprocess.Popen[bytes] | None:
    if not DELIVER_COMMAND.exists():
        log.info("no delivery worker command installed; relaying only")
        return None
    return start_child([sys.executable, str(MANAGE), "deliver"])


def start_sendalerts() -> subprocess.Popen[bytes] | None:
    # By command name, not by import: the relay does not depend on the alerts app.
    if "sendalerts" not in get_commands():
        log.info("no alert sender command installed; no alerts")
        return None
    return start_child([sys.executable, str(MANAGE), "sendalerts"])


def start_domain_check() -> subprocess.Popen[bytes] | None:
    # By command name, like sendalerts: `domain` is the accounts app's command.
    if "domain" not in get_commands():
        log.info("no domain command installed; sending domains are not re-checked")
        return None
    return start_child([sys.executable, str(MANAGE), "domain", "check", "--due", "--loop"])


def stop_child(child: subprocess.Popen[bytes] | None, timeout: float = 15) -> None:
    if child is None or child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()
