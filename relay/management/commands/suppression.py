"""`manage.py suppression`: an account's suppression list, for operators and scripts.

    suppression list   --account SLUG [--reason R] [--search TEXT]
    suppression add    --account SLUG ADDRESS… [--note N] [--expires-days D]
    suppression remove --account SLUG ADDRESS…
    suppression import --account SLUG FILE      (CSV as exported, or one address a line;
                                                 "-" reads stdin)
    suppression export --account SLUG

Results are JSON on stdout (`export` prints CSV); bad input is a message on stderr and
exit status 1. Every change is audited with the command line as the actor.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.audit import Actor
from accounts.models import Account
from relay import suppression_csv, suppressions
from relay.models import SuppressionReason


class Command(BaseCommand):
    help = "List, add, remove, import and export an account's suppressed addresses."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        lst = sub.add_parser("list", help="the account's entries, newest first")
        lst.add_argument("--reason", choices=SuppressionReason.values)
        lst.add_argument("--search", default="", help="part of the address")
        add = sub.add_parser("add", help="suppress addresses by hand")
        add.add_argument("addresses", nargs="+", metavar="ADDRESS")
        add.add_argument("--note", default="", help="why (shown in the console)")
        add.add_argument("--expires-days", type=int, help="lift the entry after D days")
        remove = sub.add_parser("remove", help="send to addresses again")
        remove.add_argument("addresses", nargs="+", metavar="ADDRESS")
        imp = sub.add_parser("import", help="add the addresses of a CSV file")
        imp.add_argument("file", help='a CSV export or one address a line; "-" is stdin')
        sub.add_parser("export", help="the entries as CSV")
        for p in (lst, add, remove, imp, sub.choices["export"]):
            p.add_argument("--account", required=True, help="Slug of the account.")

    def handle(self, *args: Any, **options: Any) -> None:
        account = Account.objects.filter(slug=options["account"]).first()
        if account is None:
            raise CommandError(f"unknown account {options['account']!r} (give its slug)")
        action = options["action"]
        actor = Actor.command_line()
        if action == "list":
            entries = suppressions.search(account, options["search"], options["reason"] or "")
            self.stdout.write(json.dumps([suppressions.entry_json(e) for e in entries]))
        elif action == "add":
            try:
                expires = suppressions.expires_after(options["expires_days"])
                added = [suppressions.add(account, a, actor, note=options["note"], expires=expires)
                         for a in self._valid(options["addresses"])]
            except suppressions.InvalidSuppression as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(json.dumps([suppressions.entry_json(e) for e in added]))
        elif action == "remove":
            removed = suppressions.remove(account, options["addresses"], actor)
            missing = sorted(
                {suppressions.normalise(a) or a for a in options["addresses"]} - set(removed))
            self.stdout.write(json.dumps({"removed": removed, "not_listed": missing}))
        elif action == "import":
            name = options["file"]
            try:
                text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
            except OSError as exc:
                raise CommandError(f"cannot read {name}: {exc.strerror}") from exc
            result = suppression_csv.import_csv(account, text, actor)
            if result.errors:
                raise CommandError("nothing imported: " + "; ".join(result.errors))
            self.stdout.write(json.dumps({"added": result.added}))
        else:
            self.stdout.write(suppression_csv.export_csv(suppressions.search(account)), ending="")

    @staticmethod
    def _valid(addresses: list[str]) -> list[str]:
        """All addresses, or CommandError naming every one that is not an address (none
        is added then)."""
        bad = [a for a in addresses if suppressions.normalise(a) is None]
        if bad:
            raise CommandError("not email addresses (name@domain): " + ", ".join(map(repr, bad)))
        return addresses
