"""`manage.py bootstrap`: migrate, then make sure there is an account to log in to.

Used by the quick start. Idempotent: on a fresh database it creates "My company" with an
owner and prints the login and a generated password; afterwards it prints only where the
console is. The first account gets a demo sending domain marked verified by an operator
(the owner's domain, or example.com for a local owner such as admin@localhost), so that a
first message can be sent without publishing anything in DNS; `--demo-domain ""` skips it.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse

from accounts.actions.domains import add_domain, force_verify
from accounts.actions.smtp_users import create_account
from accounts.audit import Actor
from accounts.models import Account
from smtpplus.addresses import InvalidEntry


class Command(BaseCommand):
    help = "Apply migrations and create a first account and owner if there is none."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--owner", default="admin@localhost", help="First owner's email")
        parser.add_argument("--account-name", default="My company")
        parser.add_argument(
            "--console-url", default=settings.SMTPPLUS_CONSOLE_URL,
            help="Where the console is served (shown in the banner)",
        )
        parser.add_argument("--no-migrate", action="store_true", help="Skip `migrate`")
        parser.add_argument(
            "--demo-domain", default=None,
            help="Sending domain of the first account marked verified without DNS "
                 "(default: the owner's domain, or example.com); \"\" for none",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        owner = options["owner"].strip().lower()
        # validate_email refuses dotless domains such as "localhost"; the default owner
        # is a local login, so only the shape user@host is required.
        local, _, host = owner.partition("@")
        if not local or not host:
            raise CommandError(f"--owner {options['owner']!r} is not an email address.")
        if "." in host:
            try:
                validate_email(owner)
            except Exception as exc:
                raise CommandError(f"--owner {options['owner']!r} is not an email address.") from exc
        if not options["no_migrate"]:
            call_command("migrate", interactive=False, verbosity=0)
        console = options["console_url"].rstrip("/")
        with transaction.atomic():
            if Account.objects.exists():
                self.stdout.write(f"console: {console}")
                return
            account, _, password = create_account(
                options["account_name"], owner, actor=Actor.command_line()
            )
            demo = self.demo_domain(account, options["demo_domain"], host)
        self.stdout.write(self.banner(console, owner, password, demo))

    @staticmethod
    def demo_domain(account: Account, wanted: str | None, owner_host: str) -> str:
        """Give the first account its demo sending domain, verified by the operator."""
        name = wanted if wanted is not None else (owner_host if "." in owner_host else "example.com")
        if not name:
            return ""
        try:
            domain = add_domain(account, name, actor=Actor.command_line())
            force_verify(domain, actor=Actor.command_line())
        except InvalidEntry as exc:
            raise CommandError(f"--demo-domain {name!r}: {exc}") from exc
        return domain.display

    def banner(self, console: str, owner: str, password: str | None, demo: str = "") -> str:
        line = "=" * 64
        secret = password if password is not None else "(unchanged: this login already existed)"
        return "\n".join(
            [
                line,
                " SMTP+ is ready. A first account was created.",
                f" Log in at:  {console}{reverse('login')}",
                f" Email:      {owner}",
                f" Password:   {secret}",
                " Change the password after logging in (top right: Password).",
                *([f" Sending domain {demo} is marked verified (a demo, no DNS needed):",
                   " authorize it for an SMTP+ user and send. Verify your real domains",
                   " on the Sending domains page."] if demo else []),
                line,
                f"console: {console}",
            ]
        )
