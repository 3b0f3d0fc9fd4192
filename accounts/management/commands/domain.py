"""`manage.py domain`: sending domains, for operators and scripts.

    domain add DOMAIN --account SLUG [--include-subdomains]
    domain list [--account SLUG]
    domain show DOMAIN [--account SLUG]
    domain check DOMAIN [--account SLUG]
    domain check --due [--loop [--interval SECONDS]]
    domain verify DOMAIN --force [--account SLUG]
    domain transfer DOMAIN --from SLUG --to SLUG
    domain remove DOMAIN [--account SLUG]
    domain dkim-show DOMAIN [--account SLUG] [--check]
    domain dkim-rotate DOMAIN [--account SLUG]

`check` looks the domain's records up now (the verification token, then every other
check) and verifies or lapses it; `check --due` checks every domain not checked for
SMTPPLUS_DOMAIN_RECHECK_INTERVAL seconds, and with `--loop` keeps doing so until
SIGTERM/SIGINT (`runrelay` and `up` start it so). `verify --force` marks a domain
verified without DNS (it then never lapses on a missing record); `transfer` moves a
domain to another account, for a domain that account proves it owns.

`dkim-show` lists the domain's DKIM keys (making its first one if it has none) and the
exact record each needs in DNS (with `--check`, it first looks the records up and moves
the keys on, as the periodic check does). `dkim-rotate` makes a new key beside the
active one — publish its record too — and checks: the new key takes over at the first
check that finds its record, and the old one is retired `SMTPPLUS_DKIM_ROTATION_GRACE`
seconds later. Run it again (or wait for the periodic check) once the record is published.
Private keys are never printed.

Results are JSON on stdout. Bad input is a message on stderr and exit status 1, and
nothing is changed. Every change is audited with the command line as the actor.
Subcommands are entries of `Command.actions`: one parser function and one handler each.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from accounts.actions import dkim_keys
from accounts.actions import domains as domain_actions
from accounts.audit import Actor
from accounts.domains import ownership
from accounts.domains.ownership import domain_data
from accounts.models import Account, DkimKeyState, SendingDomain
from smtpplus.addresses import InvalidEntry, normalize_domain
from smtpplus.lifetime import watch_parent


class Command(BaseCommand):
    help = ("Sending domains: add, list, show, check, verify, transfer and remove them; "
            "show and rotate their DKIM keys.")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shutdown = False
        # name -> (help, add arguments, run): the subcommands, easy to add to.
        self.actions: dict[str, tuple[str, Callable[[CommandParser], None],
                                      Callable[[dict[str, Any]], Any]]] = {
            "add": ("Add a sending domain to an account (unverified until checked).",
                    self.add_parser_args, self.do_add),
            "list": ("List sending domains.", self.list_parser_args, self.do_list),
            "show": ("Show a sending domain, its records and its last check.",
                     self.domain_arguments, self.do_show),
            "check": ("Check a domain's DNS now (or every domain due: --due).",
                      self.check_parser_args, self.do_check),
            "verify": ("Mark a domain verified by hand (--force: without DNS).",
                       self.verify_parser_args, self.do_verify),
            "transfer": ("Move a domain to another account.", self.transfer_parser_args,
                         self.do_transfer),
            "remove": ("Remove a sending domain.", self.domain_arguments, self.do_remove),
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

    @staticmethod
    def add_parser_args(parser: CommandParser) -> None:
        parser.add_argument("domain", help="The domain (Unicode or A-label).")
        parser.add_argument("--account", required=True, help="Slug of the account.")
        parser.add_argument("--include-subdomains", action="store_true",
                            help="Its subdomains may be authorized for the account's users too.")

    @staticmethod
    def list_parser_args(parser: CommandParser) -> None:
        parser.add_argument("--account", help="Only this account's domains.")

    def check_parser_args(self, parser: CommandParser) -> None:
        parser.add_argument("domain", nargs="?", help="The sending domain.")
        parser.add_argument("--account", help="Slug of its account (when several have it).")
        parser.add_argument("--due", action="store_true",
                            help="Check every domain due for its periodic check.")
        parser.add_argument("--loop", action="store_true",
                            help="With --due: keep checking until SIGTERM/SIGINT.")
        parser.add_argument("--interval", type=float, default=60.0,
                            help="With --loop: seconds between passes (default 60).")

    def verify_parser_args(self, parser: CommandParser) -> None:
        self.domain_arguments(parser)
        parser.add_argument("--force", action="store_true",
                            help="Required: mark it verified without a DNS record.")

    def dkim_show_parser_args(self, parser: CommandParser) -> None:
        self.domain_arguments(parser)
        parser.add_argument("--check", action="store_true",
                            help="Look the records up first (and move the keys on).")

    @staticmethod
    def transfer_parser_args(parser: CommandParser) -> None:
        parser.add_argument("domain", help="The sending domain.")
        parser.add_argument("--from", dest="from_account", required=True,
                            help="Slug of the account that has it.")
        parser.add_argument("--to", dest="to_account", required=True,
                            help="Slug of the account to give it to.")

    # --- lookups --------------------------------------------------------------------
    @staticmethod
    def account(slug: str) -> Account:
        try:
            return Account.objects.get(slug=slug)
        except Account.DoesNotExist:
            raise CommandError(f"no account with slug {slug!r}") from None

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
    def do_add(self, options: dict[str, Any]) -> dict[str, Any]:
        account = self.account(options["account"])
        try:
            domain = domain_actions.add_domain(
                account, options["domain"], include_subdomains=options["include_subdomains"],
                actor=Actor.command_line())
        except InvalidEntry as exc:
            raise CommandError(f"{options['domain']!r}: {exc}") from exc
        return domain_data(domain)

    def do_list(self, options: dict[str, Any]) -> list[dict[str, Any]]:
        rows = SendingDomain.objects.select_related("account").order_by("domain", "account__slug")
        if options.get("account"):
            rows = rows.filter(account=self.account(options["account"]))
        return [domain_data(d) for d in rows]

    def do_show(self, options: dict[str, Any]) -> dict[str, Any]:
        return domain_data(self.sending_domain(options))

    def do_check(self, options: dict[str, Any]) -> Any:
        if options["due"]:
            if options["domain"]:
                raise CommandError("give a domain or --due, not both")
            return self.check_due(options)
        if not options["domain"]:
            raise CommandError("give the domain to check, or --due")
        domain = self.sending_domain(options)
        domain_actions.check_domain(domain, actor=Actor.command_line())
        domain.refresh_from_db()
        return domain_data(domain)

    def check_due(self, options: dict[str, Any]) -> Any:
        if not options["loop"]:
            return [self.check_one(d) for d in ownership.due_domains()]
        watch_parent()
        signal.signal(signal.SIGTERM, self.on_signal)
        signal.signal(signal.SIGINT, self.on_signal)
        self.stdout.write(json.dumps({"domain_check": "running"}))
        while not self.shutdown:
            close_old_connections()
            try:
                for domain in ownership.due_domains():
                    if self.shutdown:
                        break
                    self.stdout.write(json.dumps(self.check_one(domain)))
            except Exception as exc:  # a database outage must not end the loop
                self.stderr.write(f"domain check pass failed: {exc.__class__.__name__}: {exc}")
                close_old_connections()
            deadline = time.monotonic() + options["interval"]
            while not self.shutdown and time.monotonic() < deadline:
                time.sleep(0.2)
        self.stdout.write(json.dumps({"domain_check": "stopped"}))
        return None

    def on_signal(self, signum: int, frame: Any) -> None:
        self.shutdown = True

    @staticmethod
    def check_one(domain: SendingDomain) -> dict[str, Any]:
        domain_actions.check_domain(domain, actor=Actor.system("SMTP+ periodic domain check"))
        domain.refresh_from_db()
        data = domain_data(domain)
        return {k: data[k] for k in ("domain", "account", "status", "verdict", "last_checked_at")}

    def do_verify(self, options: dict[str, Any]) -> dict[str, Any]:
        if not options["force"]:
            raise CommandError(
                "verify marks a domain verified without DNS: add --force to do so, or "
                "publish its record and run `manage.py domain check`")
        domain = self.sending_domain(options)
        try:
            domain = domain_actions.force_verify(domain, actor=Actor.command_line())
        except InvalidEntry as exc:
            raise CommandError(str(exc)) from exc
        return domain_data(domain)

    def do_transfer(self, options: dict[str, Any]) -> dict[str, Any]:
        domain = self.sending_domain({"domain": options["domain"],
                                      "account": options["from_account"]})
        target = self.account(options["to_account"])
        try:
            domain = domain_actions.transfer_domain(domain, target, actor=Actor.command_line())
        except InvalidEntry as exc:
            raise CommandError(str(exc)) from exc
        return domain_data(domain)

    def do_remove(self, options: dict[str, Any]) -> dict[str, Any]:
        domain = self.sending_domain(options)
        data: dict[str, Any] = {"domain": domain.domain, "account": domain.account.slug,
                                "removed": True}
        data["removed_authorizations"] = domain_actions.remove_domain(
            domain, actor=Actor.command_line())
        return data

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
