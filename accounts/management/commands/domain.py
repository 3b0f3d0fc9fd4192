"""`manage.py domain`: sending domains, for operators and scripts.

    domain dkim-show DOMAIN [--account SLUG] [--check]
    domain dkim-rotate DOMAIN [--account SLUG]

`dkim-show` lists the domain's DKIM keys and the exact record each needs in DNS (with
`--check`, it first looks the records up and moves the keys on, as the periodic check
does). `dkim-rotate` makes a new key beside the active one — publish its record too —
and checks: the new key takes over at the first check that finds its record, and the old
one is retired `SMTPPLUS_DKIM_ROTATION_GRACE` seconds later. Run it again (or wait for
the periodic check) once the record is published.

Results are JSON on stdout; private keys are never printed. Bad input is a message on
stderr and exit status 1. Changes are audited with the command line as the actor.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from accounts.actions.dkim_keys import (
    KeyCheck,
    ensure_keys,
    findings,
    live_keys,
    record_of,
    refresh_keys,
    start_rotation,
)
from accounts.audit import Actor
from accounts.models import DkimKey, DkimKeyState, SendingDomain
from accounts.senders import InvalidEntry, normalize_domain


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def key_data(key: DkimKey) -> dict[str, Any]:
    """A key as the command shows it: its state and the record to publish (never its
    private part)."""
    record = record_of(key)
    retire_after = None
    if key.state == DkimKeyState.RETIRING and key.retiring_since is not None:
        retire_after = key.retiring_since + timedelta(seconds=settings.SMTPPLUS_DKIM_ROTATION_GRACE)
    return {
        "selector": key.selector,
        "algorithm": key.algorithm,
        "state": key.state,
        "created": _when(key.created),
        "activated_at": _when(key.activated_at),
        "retiring_since": _when(key.retiring_since),
        "retire_after": _when(retire_after),
        "last_checked_at": _when(key.last_checked_at),
        "dns_status": key.dns_status,
        "record": {
            "name": record.name,
            "type": "TXT",
            "value": record.value,
            "strings": list(record.strings),
            "zone_line": record.zone_line,
        },
    }


def dkim_data(domain: SendingDomain, checks: list[KeyCheck] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "domain": domain.domain,
        "account": domain.account.slug,
        "status": domain.status,
        "keys": [key_data(k) for k in live_keys(domain)],
    }
    if checks is not None:
        data["findings"] = [f.to_dict() for f in findings(checks)]
    return data


class Command(BaseCommand):
    help = "Sending domains: DKIM keys and their rotation."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        show = sub.add_parser("dkim-show", help="The domain's DKIM keys and their records.")
        self.domain_arguments(show)
        show.add_argument("--check", action="store_true",
                          help="Look the records up first (and move the keys on).")
        rotate = sub.add_parser("dkim-rotate", help="Start (or go on with) a key rotation.")
        self.domain_arguments(rotate)

    @staticmethod
    def domain_arguments(parser: CommandParser) -> None:
        parser.add_argument("domain", help="The sending domain (Unicode or A-label).")
        parser.add_argument("--account", help="Slug of its account (when several have it).")

    def handle(self, *args: Any, **options: Any) -> None:
        actions: dict[str, Callable[[dict[str, Any]], Any]] = {
            "dkim-show": self.dkim_show,
            "dkim-rotate": self.dkim_rotate,
        }
        self.stdout.write(json.dumps(actions[options["action"]](options)))

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
            raise CommandError(f"{name} is a sending domain of several accounts: "
                               "say which with --account SLUG")
        return found[0]

    def dkim_show(self, options: dict[str, Any]) -> dict[str, Any]:
        domain = self.sending_domain(options)
        actor = Actor.command_line()
        ensure_keys(domain, actor)
        checks = refresh_keys(domain, actor=actor) if options["check"] else None
        return dkim_data(domain, checks)

    def dkim_rotate(self, options: dict[str, Any]) -> dict[str, Any]:
        domain = self.sending_domain(options)
        actor = Actor.command_line()
        ensure_keys(domain, actor)
        new = start_rotation(domain, actor)
        checks = refresh_keys(domain, actor=actor)
        data = dkim_data(domain, checks)
        pending = [k["record"]["name"] for k in data["keys"] if k["state"] == DkimKeyState.PENDING]
        data["new_selectors"] = [k.selector for k in new]
        data["next"] = (
            "publish " + ", ".join(pending) + " (keep the active key's record), then run "
            "dkim-rotate again or wait for the periodic check" if pending
            else "the new key is active; the old one is retired after the grace period"
        )
        return data
