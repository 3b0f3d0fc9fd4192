"""Run the alert sender: collect new events, build due alerts, send notifications.

`runrelay` (and so `up`) starts it as a child process of its own; run it yourself for a
relay started with --no-alerts, or to send alerts while the relay is stopped.

The loop also folds closed hours into the statistics tables (`relay.rollup`, about once
a minute): it is the one periodic housekeeping loop every installation already runs.
"""

from __future__ import annotations

import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import close_old_connections

from alerts.sending import run_once
from relay import rollup
from smtpplus import metrics
from smtpplus.lifetime import watch_parent
from smtpplus.metrics import check_metrics_address

ROLLUP_SECONDS = 60.0


class Command(BaseCommand):
    help = "Send alert emails and webhooks (loops until SIGTERM/SIGINT; --once for one pass)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--once", action="store_true", help="one pass, then exit")
        parser.add_argument("--interval", type=float, default=10.0, help="seconds between passes")
        parser.add_argument("--metrics", default=settings.METRICS_ALERTS_LISTEN, metavar="HOST:PORT",
                            help="serve Prometheus metrics there (default: METRICS_ALERTS_LISTEN)")

    def on_signal(self, signum: int, frame: Any) -> None:
        self.stdout.write(f"Received signal {signum}, finishing the current pass…")
        self.shutdown = True

    def handle(self, *args: Any, **opts: Any) -> None:
        watch_parent()
        if opts["once"]:
            sent = run_once()
            self.stdout.write(f"Sent {sent} notification{'s' if sent != 1 else ''}.")
            return
        check_metrics_address(opts["metrics"])
        metrics.serve(opts["metrics"], "alert sender")
        self.shutdown = False
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        self.stdout.write("sendalerts is now running")
        next_rollup = 0.0
        while not self.shutdown:
            close_old_connections()
            try:
                sent = run_once()
                if sent:
                    self.stdout.write(f"Sent {sent} notification{'s' if sent != 1 else ''}.")
            except Exception as exc:  # a database outage must not end the loop
                self.stderr.write(f"alert pass failed: {exc.__class__.__name__}: {exc}")
                close_old_connections()
            if time.monotonic() >= next_rollup:
                next_rollup = time.monotonic() + ROLLUP_SECONDS
                self.fold_statistics()
            deadline = time.monotonic() + opts["interval"]
            while not self.shutdown and time.monotonic() < deadline:
                time.sleep(0.2)
        self.stdout.write("sendalerts stopped.")

    def fold_statistics(self) -> None:
        """Fold closed hours into the statistics; a failure is reported, never fatal,
        and at most a day is folded per pass so alerts are not held up by a backfill."""
        try:
            rollup.fold_due(max_hours=24)
        except Exception as exc:
            self.stderr.write(f"statistics rollup failed: {exc.__class__.__name__}: {exc}")
            close_old_connections()
