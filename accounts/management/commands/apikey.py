"""`manage.py apikey`: API keys for /api/v1/, for operators and scripts.

    apikey create --account SLUG --name N [--role admin|read_only] [--expires-days D]
                  [--networks "10.0.0.0/8 192.0.2.7"] [--smtp-user USERNAME]
    apikey list --account SLUG
    apikey revoke PREFIX

`--smtp-user` makes a send key: it only sends messages, as that SMTP+ user of the account.
Results are JSON on stdout; the key itself is printed by `create` only, once. Bad input
is a message on stderr and exit status 1. Every change is audited with the command line
as the actor.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from accounts.actions.api_keys import create_api_key, revoke_api_key
from accounts.api.keys import parse_networks
from accounts.audit import Actor
from accounts.models import Account, ApiKey, ApiKeyRole, SmtpUser


def key_data(key: ApiKey) -> dict[str, Any]:
    """What a list shows of a key (never its secret: it is not stored)."""
    return {
        "prefix": key.prefix,
        "name": key.name,
        "account": key.account.slug,
        "role": key.role,
        "sends_as": key.smtp_user.username if key.smtp_user else None,
        "expires_at": key.expires_at.isoformat() if key.expires_at else None,
        "allowed_networks": key.allowed_networks,
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "last_used_ip": key.last_used_ip,
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }


class Command(BaseCommand):
    help = "Create, list and revoke API keys."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = sub.add_parser("create", help="Create a key; prints it (only this once).")
        create.add_argument("--account", required=True, help="Slug of the account.")
        create.add_argument("--name", required=True, help="What uses it, e.g. 'Deploy pipeline'.")
        create.add_argument("--role", choices=ApiKeyRole.values, default=ApiKeyRole.READ_ONLY)
        create.add_argument("--expires-days", type=int, help="Days until the key stops working.")
        create.add_argument("--networks", default="", help="Client networks allowed (CIDR).")
        create.add_argument("--smtp-user", help="A send key for this SMTP+ user (its username).")
        sub.add_parser("list", help="List an account's keys.").add_argument(
            "--account", required=True, help="Slug of the account."
        )
        sub.add_parser("revoke", help="Revoke a key at once.").add_argument(
            "prefix", help="The key's prefix (shown by list)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "revoke":
            key = ApiKey.objects.select_related("account", "smtp_user").filter(prefix=options["prefix"]).first()
            if key is None:
                raise CommandError(f"unknown API key prefix {options['prefix']!r}")
            revoke_api_key(key, actor=Actor.command_line())
            result: Any = key_data(key)
        elif action == "list":
            account = self.account(options["account"])
            result = [key_data(k) for k in account.api_keys.select_related("account", "smtp_user")]
        else:
            result = self.create(options)
        self.stdout.write(json.dumps(result))

    @staticmethod
    def account(slug: str) -> Account:
        account = Account.objects.filter(slug=slug).first()
        if account is None:
            raise CommandError(f"unknown account {slug!r} (give its slug)")
        return account

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        account = self.account(options["account"])
        try:
            networks = parse_networks(options["networks"])
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        smtp_user = None
        if options["smtp_user"]:
            smtp_user = SmtpUser.objects.filter(
                account=account, username=options["smtp_user"].strip().lower()).first()
            if smtp_user is None:
                raise CommandError(f"no SMTP+ user {options['smtp_user']!r} in account "
                                   f"{account.slug!r} (give its username)")
        days = options["expires_days"]
        if days is not None and days < 1:
            raise CommandError("--expires-days must be 1 or more")
        key, raw = create_api_key(
            account, name=options["name"], role=options["role"],
            expires_at=timezone.now() + timedelta(days=days) if days else None,
            allowed_networks=networks, actor=Actor.command_line(), smtp_user=smtp_user,
        )
        return {**key_data(key), "key": raw}
