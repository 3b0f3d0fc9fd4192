"""`manage.py createaccount NAME --owner EMAIL [--password P]`: a new account and its owner.

Prints `{"account": SLUG, "owner": EMAIL, "password": P}`; the password is null when the
owner already had a console login (it keeps its password).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email

from accounts.actions.smtp_users import create_account
from accounts.audit import Actor


class Command(BaseCommand):
    help = "Create an account with an owner (a new console user unless the email exists)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Account name, e.g. the company name")
        parser.add_argument("--owner", required=True, help="Owner's email (console login)")
        parser.add_argument(
            "--password", help="Password of a new owner (default: a generated one)"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["name"].strip()
        email = options["owner"].strip().lower()
        password = options["password"]
        if not name:
            raise CommandError("The account name is empty.")
        if len(name) > 200:
            raise CommandError("The account name is longer than 200 characters.")
        try:
            validate_email(email)
        except ValidationError as exc:
            raise CommandError(f"--owner {options['owner']!r} is not a valid email address.") from exc
        if password is not None and not password.strip():
            raise CommandError("--password is empty.")
        account, _, new_password = create_account(
            name, email, password=password, actor=Actor.command_line()
        )
        if new_password is None and password is not None:
            self.stderr.write(f"{email} already has a console login; its password was not changed.")
        self.stdout.write(
            json.dumps({"account": account.slug, "owner": email, "password": new_password})
        )
