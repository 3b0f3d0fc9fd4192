"""`manage.py smtpuser`: SMTP+ users for operators and scripts.

    smtpuser create --account SLUG [--name N] [--domains "a.com;b.com"] [--emails "x@a.com"]
    smtpuser show USERNAME [--reveal]
    smtpuser authorize USERNAME [--domains …] [--emails …] [--include-subdomains]
    smtpuser enable|disable|reset-password USERNAME

Results are JSON on stdout. Bad input is a message on stderr and exit status 1, and
nothing is changed. Every change is audited with the command line as the actor.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts.actions import senders, smtp_users
from accounts.audit import Actor
from accounts.models import Account, SmtpUser
from smtpplus.addresses import display_email, domain_to_unicode


def _sender_arguments(parser: CommandParser) -> None:
    parser.add_argument(
        "--domains", default="", help='Domains to authorize, e.g. "a.com;b.com" (; , or spaces).'
    )
    parser.add_argument("--emails", default="", help="Addresses to authorize, e.g. x@a.com.")
    parser.add_argument(
        "--include-subdomains", action="store_true",
        help="Also authorize the subdomains of the domains given.",
    )


class Command(BaseCommand):
    help = "Create, show, authorize, enable, disable SMTP+ users and reset their passwords."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        create = sub.add_parser("create", help="Create a user; prints its username and password.")
        create.add_argument("--account", required=True, help="Slug of the account.")
        create.add_argument("--name", default="", help="What sends with it, e.g. 'Web shop'.")
        _sender_arguments(create)
        show = sub.add_parser("show", help="Show a user (add --reveal for its password).")
        show.add_argument("username")
        show.add_argument("--reveal", action="store_true", help="Include the password (audited).")
        authorize = sub.add_parser("authorize", help="Authorize sender domains and addresses.")
        authorize.add_argument("username")
        _sender_arguments(authorize)
        for action, text in (
            ("enable", "Let the user log in to the relay again."),
            ("disable", "Refuse the user's logins."),
            ("reset-password", "Give the user a new password; the old one stops working."),
        ):
            sub.add_parser(action, help=text).add_argument("username")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        if action == "create":
            result = self.create(options)
        else:
            smtp_user = self.lookup(options["username"])
            if action == "show":
                result = self.show(smtp_user, reveal=options["reveal"])
            elif action == "authorize":
                result = self.authorize(smtp_user, options)
            elif action in ("enable", "disable"):
                smtp_users.set_active(smtp_user, action == "enable", actor=Actor.command_line())
                result = {"username": smtp_user.username, "active": smtp_user.active}
            else:
                password = smtp_users.reset_password(smtp_user, actor=Actor.command_line())
                result = {"username": smtp_user.username, "password": password}
        self.stdout.write(json.dumps(result))

    @staticmethod
    def lookup(username: str) -> SmtpUser:
        smtp_user = (
            SmtpUser.objects.select_related("account")
            .filter(username=username.strip().lower())
            .first()
        )
        if smtp_user is None:
            raise CommandError(f"unknown SMTP+ user {username!r}")
        return smtp_user

    @staticmethod
    def check_senders(options: dict[str, Any], required: bool, account_id: int,
                      existing: frozenset[str] = frozenset()) -> None:
        """Refuse the whole call if any entry is invalid, naming each one and why (a
        domain the account does not own included)."""
        domains, emails = options["domains"], options["emails"]
        if required and not (domains.strip() or emails.strip()):
            raise CommandError("nothing to authorize: give --domains and/or --emails")
        parsed_domains, parsed_emails = senders.validate_senders(
            domains, emails, account_id=account_id,
            include_subdomains=options["include_subdomains"], existing=existing)
        problems = [f"invalid domain {e!r}: {r}" for e, r in parsed_domains.errors]
        problems += [f"invalid email {e!r}: {r}" for e, r in parsed_emails.errors]
        problems += [
            f"{display_email(e)!r} is an email address: give it with --emails"
            for e in parsed_domains.emails_in_domain_box
        ]
        if problems:
            raise CommandError("; ".join(problems) + " (nothing was changed)")

    def create(self, options: dict[str, Any]) -> dict[str, Any]:
        account = Account.objects.filter(slug=options["account"]).first()
        if account is None:
            raise CommandError(f"unknown account {options['account']!r} (give its slug)")
        self.check_senders(options, required=False, account_id=account.pk)
        with transaction.atomic():
            smtp_user, password = smtp_users.create_smtp_user(
                account, name=options["name"], actor=Actor.command_line()
            )
            if options["domains"] or options["emails"]:
                self.add(smtp_user, options)
        return {"username": smtp_user.username, "password": password, "account": account.slug}

    def authorize(self, smtp_user: SmtpUser, options: dict[str, Any]) -> dict[str, Any]:
        existing = frozenset(smtp_user.authorized_domains.values_list("domain", flat=True))
        self.check_senders(options, required=True, account_id=smtp_user.account_id,
                           existing=existing)
        result = self.add(smtp_user, options)
        return {
            "username": smtp_user.username,
            "added_domains": [domain_to_unicode(d) for d in result.added_domains],
            "added_emails": [display_email(e) for e in result.added_emails],
            "unchanged": result.unchanged,
            "warnings": [{"entry": e, "advice": a} for e, a in result.warnings],
            # Addresses at a domain the account does not own: usable once confirmed by
            # the link mailed to them.
            "pending_confirmation": [display_email(e) for e in result.pending_emails],
        }

    def add(self, smtp_user: SmtpUser, options: dict[str, Any]) -> senders.AddResult:
        try:
            result = senders.add_senders(
                smtp_user,
                domains_text=options["domains"],
                emails_text=options["emails"],
                include_subdomains=options["include_subdomains"],
                actor=Actor.command_line(),
            )
        except senders.TooManySenders as exc:
            raise CommandError(f"{exc} (SMTPPLUS_MAX_SENDERS_PER_USER)") from exc
        for entry, advice in result.warnings:
            self.stderr.write(f"warning: {entry}: {advice}")
        return result

    @staticmethod
    def show(smtp_user: SmtpUser, reveal: bool) -> dict[str, Any]:
        domains = list(smtp_user.authorized_domains.all())
        data: dict[str, Any] = {
            "username": smtp_user.username,
            "name": smtp_user.name,
            "account": smtp_user.account.slug,
            "active": smtp_user.active,
            "priority": smtp_user.priority,
            "hourly_limit": smtp_user.hourly_limit,
            "domains": [d.display for d in domains],
            "domains_with_subdomains": [d.display for d in domains if d.include_subdomains],
            "emails": [e.display for e in smtp_user.authorized_emails.all()],
            "last_login_at": smtp_user.last_login_at.isoformat()
            if smtp_user.last_login_at else None,
            "last_login_ip": smtp_user.last_login_ip,
        }
        if reveal:
            data["password"] = smtp_users.reveal_password(smtp_user, actor=Actor.command_line())
        return data
