"""`manage.py rollup [--refold-from DATE]`: fold closed hours into the statistics tables.

The `sendalerts` loop (started by `runrelay` and `up`) already runs this about once a
minute; run it yourself after a restore, from cron when alerts run elsewhere, or with
`--refold-from` to count hours again after their data changed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from relay import rollup


def parse_moment(value: str) -> datetime:
    """An ISO date or date-time; naive values are in the console's time zone."""
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--refold-from {value!r}: not a date (YYYY-MM-DD) "
                               "or date-time (YYYY-MM-DDTHH:MM)")
        moment = datetime(day.year, day.month, day.day)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment.astimezone(UTC)


class Command(BaseCommand):
    help = ("Fold every closed hour not folded yet into the hourly statistics (idempotent); "
            "prints JSON.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--refold-from", metavar="DATE",
                            help="count every hour from DATE (YYYY-MM-DD[THH:MM]) again")
        parser.add_argument("--max-hours", type=int, default=None,
                            help="fold at most this many hours in this run")

    def handle(self, *args: Any, **opts: Any) -> None:
        if opts["refold_from"]:
            rollup.refold_from(parse_moment(opts["refold_from"]))
        if opts["max_hours"] is not None and opts["max_hours"] < 1:
            raise CommandError("--max-hours must be at least 1")
        folded = rollup.fold_due(max_hours=opts["max_hours"])
        until = rollup.folded_until()
        self.stdout.write(json.dumps({
            "hours_folded": len(folded),
            "first": folded[0].isoformat() if folded else None,
            "last": folded[-1].isoformat() if folded else None,
            "folded_until": until.isoformat() if until else None,
        }))
