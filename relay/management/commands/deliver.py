"""`manage.py deliver`: run delivery workers until SIGTERM/SIGINT (or, with --once,
until nothing is due)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay.delivery.upstreams.maildir import maildir_problem
from relay.delivery.upstreams.spec import UpstreamConfigError, parse_upstream
from relay.delivery.worker import BATCH_SIZE, run_until_signal
from smtpplus import metrics
from smtpplus.lifetime import watch_parent
from smtpplus.metrics import check_metrics_address


class Command(BaseCommand):
    help = (
        "Deliver queued mail to RELAY_UPSTREAM. Any number of these may run against one "
        "database; each due recipient is leased by one worker at a time."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--concurrency",
            type=int,
            default=settings.DELIVERY_CONCURRENCY,
            help="Deliveries in flight at once (default: DELIVERY_CONCURRENCY, %(default)s).",
        )
        parser.add_argument(
            "--batch",
            type=int,
            default=BATCH_SIZE,
            help="Recipients each task claims at a time (default %(default)s).",
        )
        parser.add_argument(
            "--once", action="store_true", help="Deliver what is due now, then exit."
        )
        parser.add_argument(
            "--metrics", default=settings.METRICS_DELIVERY_LISTEN, metavar="HOST:PORT",
            help="Serve Prometheus metrics there (default: METRICS_DELIVERY_LISTEN).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        watch_parent()
        if options["concurrency"] < 1 or options["batch"] < 1:
            raise CommandError("--concurrency and --batch must be at least 1")
        try:
            spec = parse_upstream(settings.RELAY_UPSTREAM)
        except UpstreamConfigError as exc:
            raise CommandError(str(exc)) from None
        if spec.kind == "maildir" and (problem := maildir_problem(spec.path)):
            raise CommandError(f"RELAY_UPSTREAM: {problem}")
        check_metrics_address(options["metrics"])
        metrics.serve(options["metrics"], "delivery")
        if options["verbosity"] >= 1:
            self.stderr.write(f"Delivering to {spec.label} with {options['concurrency']} task(s)")
        stats = run_until_signal(
            options["concurrency"], once=options["once"], batch_size=options["batch"]
        )
        if options["verbosity"] >= 1:
            summary = ", ".join(f"{k} {v}" for k, v in sorted(stats.items())) or "nothing due"
            self.stdout.write(f"Done: {summary}")
