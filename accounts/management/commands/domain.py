"""`manage.py domain`: sending domains, for operators and scripts.

    domain dkim-show DOMAIN [--account SLUG] [--check]
    domain dkim-rotate DOMAIN [--account SLUG]

`dkim-show` lists the domain's DKIM keys (making its first one if it has none) and the
exact record each needs in DNS (with `--check`, it first looks the records up and moves
the keys on, as the periodic check does). `dkim-rotate` makes a new key beside the
active one — publish its record too — and checks: the new key takes over at the first
check that finds its record, and the old one is retired `SMTPPLUS_DKIM_ROTATION_GRACE`
seconds later. Run it again (or wait for the periodic check) once the record is published.

Results are JSON on stdout; private keys are never printed. Bad input is a message on
stderr and exit status 1. Every change is audited with the command line as the actor.
Subcommands are entries of `Command.actions`: one parser function and one handler each.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.actions import dkim_keys
from accounts.audit import Actor
from accounts.models import DkimKeyState, SendingDomain
from accounts.senders import InvalidEntry, normalize_domain


class Command(BaseCommand):
    help = "Sending domains: DKIM keys and their rotation."

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # name -> (help, add arguments, run): the subcommands, easy to add to.
        self.actions: dict[str, tuple[str, Callable[[CommandParser], None],
                                      Callable[[dict[str, Any]], Any]]] = {
            "dkim-show": ("Show the domain's DKIM keys and the records to publish.",
                          self.dkim_show_parser_args, self.do_dkim_show),
            "dkim-rotate": ("Start (or go on with) a DKIM key rotation.",
                            self.domain_arguments, self.do_dkim_rotate),
        }

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        for name, (text, arguments, _run) in self.actions.items():
            arguments(sub.add_parser(name, help=text))

    def handle(self, *args: Any, **options: Any) -> None:
        result = self.actions[options["action"]][2](options)
        if result is not None:
            self.stdout.write(json.dumps(result))

    # --- arguments ------------------------------------------------------------------
    @staticmethod
    def domain_arguments(parser: CommandParser) -> None:
        parser.add_argument("domain", help="The sending domain (Unicode or A-label).")
        parser.add_argument("--account", help="Slug of its account (when several have it).")

    def dkim_show_parser_args(self, parser: CommandParser) -> None:
        self.domain_arguments(parser)
        parser.add_argument("--check", action="store_true",
                            help="Look the records up first (and move the keys on).")

    # --- lookups --------------------------------------------------------------------
    @staticmethod
    def sending_domain(options: dict[str, Any]) -> SendingDomain:
        try:
            name = normalize_domain(options["domain"])
        except InvalidEntry as exc:
            raise CommandError(f"{options['domain']!r} is not a domain: {exc}") from exc
        rows = SendingDomain.objects.select_related("account").filter(domain=name)
        if options.get("account"):
            rows = rows.filter(account__slug=options["account"])
        found = list(rows[:2])
        if not found:
            raise CommandError(f"{name} is not a sending domain"
                               + (f" of account {options['account']!r}" if options.get("account") else ""))
        if len(found) > 1:
            raise CommandError(f"several accounts have {name}: say which with --account SLUG")
        return found[0]

    # --- subcommands ----------------------------------------------------------------
    def do_dkim_show(self, options: dict[str, Any]) -> dict[str, Any]:
        domain = self.sending_domain(options)
        actor = Actor.command_line()
        dkim_keys.ensure_keys(domain, actor)
        checks = dkim_keys.refresh_keys(domain, actor=actor) if options["check"] else None
        return dkim_keys.dkim_data(domain, checks)

    def do_dkim_rotate(self, options: dict[str, Any]) -> dict[str, Any]:
        domain = self.sending_domain(options)
        actor = Actor.command_line()
        dkim_keys.ensure_keys(domain, actor)
        new = dkim_keys.start_rotation(domain, actor)
        data = dkim_keys.dkim_data(domain, dkim_keys.refresh_keys(domain, actor=actor))
        pending = [k["record"]["name"] for k in data["keys"] if k["state"] == DkimKeyState.PENDING]
        data["new_selectors"] = [k.selector for k in new]
        data["next"] = (
            "publish " + ", ".join(pending) + " (keep the active key's record), then run "
            "dkim-rotate again or wait for the periodic check" if pending
            else "the new key is active; the old one is retired after the grace period"
        )
        return data
