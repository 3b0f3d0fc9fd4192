"""`manage.py prunequeue [--days N]`: apply the retention period (run it daily, e.g.
from cron or a systemd timer)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay.retention import prune


class Command(BaseCommand):
    help = (
        "Empty the bodies of finished messages and delete delivery attempts and relay "
        "events older than N days (default RETENTION_DAYS). Each recipient's final status "
        "and last reply are kept for the messages log."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--days",
            type=int,
            default=settings.RETENTION_DAYS,
            help="Keep this many days (default: RETENTION_DAYS, %(default)s).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            result = prune(options["days"])
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"Before {result.cutoff:%Y-%m-%d %H:%M}: {result.messages_pruned} message bodies "
            f"removed, {result.attempts_deleted} attempts and {result.events_deleted} relay "
            "events deleted"
        )
