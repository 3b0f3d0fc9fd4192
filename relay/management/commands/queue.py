"""`manage.py queue`: the operator's view of the delivery queue, in the spirit of
Postfix's postqueue/postsuper.

    queue list [--json] [--status S] [--user U]
    queue show ID
    queue retry ID… | --all-deferred
    queue cancel ID…

An ID is either a recipient id (a number, as `queue list` prints it) or a message's
queue id (`3D8G8BBT6H95KQ2M`, from "250 2.0.0 Ok: queued as …"), which stands for all of
that message's recipients.
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet

from accounts.audit import Actor
from accounts.models import SmtpUser
from relay.delivery import actions
from relay.delivery.upstreams.reply import Reply
from relay.headers import decoded_headers
from relay.models import (
    FINAL_STATUSES,
    PENDING_STATUSES,
    Message,
    Recipient,
    RecipientStatus,
)

ID_HELP = (
    "recipient ids (numbers, as `queue list` prints them) or message queue ids "
    "(e.g. 3D8G8BBT6H95KQ2M; all recipients of that message)"
)


def resolve_ids(ids: list[str]) -> QuerySet[Recipient]:
    """Recipients named by ids; CommandError naming every id that matches nothing."""
    recipient_ids: list[int] = []
    queue_ids: list[str] = []
    for raw in ids:
        value = raw.strip()
        if value.isdigit():
            recipient_ids.append(int(value))
        elif value.isalnum():
            queue_ids.append(value.upper())
        else:
            raise CommandError(f"{raw!r} is neither a recipient id nor a message queue id")
    found_ids = set(Recipient.objects.filter(pk__in=recipient_ids).values_list("pk", flat=True))
    unknown = [str(i) for i in recipient_ids if i not in found_ids]
    found_queue_ids = set(
        Message.objects.filter(queue_id__in=queue_ids).values_list("queue_id", flat=True)
    )
    unknown += [q for q in queue_ids if q not in found_queue_ids]
    if unknown:
        raise CommandError(f"No recipient or message with id {', '.join(unknown)}")
    return Recipient.objects.filter(pk__in=recipient_ids) | Recipient.objects.filter(
        message__queue_id__in=queue_ids
    )


def recipient_json(r: Recipient) -> dict[str, Any]:
    return {
        "id": r.pk,
        "message": r.message.queue_id,
        "account": r.account.slug,
        "smtp_user": r.smtp_user.username if r.smtp_user else None,
        "sender": r.message.envelope_from,
        "recipient": r.address,
        "status": r.status,
        "attempts": r.attempts,
        "created": r.created.isoformat(),
        "next_attempt": r.next_attempt_at.isoformat() if r.status in PENDING_STATUSES else None,
        "finished": r.finished_at.isoformat() if r.finished_at else None,
        "fail_reason": r.fail_reason,
        "last_code": r.last_code,
        "last_enhanced": r.last_enhanced,
        "last_text": r.last_text,
    }


def _reply(code: int | None, enhanced: str, text: str) -> str:
    return str(Reply(code, enhanced, text)) or "-"


class Command(BaseCommand):
    help = "List, show, retry and cancel queued mail. IDs are " + ID_HELP + "."

    def add_arguments(self, parser: CommandParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        lst = sub.add_parser("list", help="list recipients (by default the pending ones)")
        lst.add_argument("--json", action="store_true", help="one JSON object per line")
        lst.add_argument(
            "--status",
            choices=[*RecipientStatus.values, "pending", "all"],
            default="pending",
            help="queued, deferred, delivered, failed, cancelled, pending (queued and "
            "deferred, the default) or all",
        )
        lst.add_argument("--user", help="only this SMTP+ user (its username)")
        show = sub.add_parser("show", help="envelope, headers and attempts of a message")
        show.add_argument("id", help=ID_HELP)
        retry = sub.add_parser("retry", help="make recipients due now (requeues failed ones)")
        retry.add_argument("ids", nargs="*", metavar="ID", help=ID_HELP)
        retry.add_argument(
            "--all-deferred", action="store_true", help="every deferred recipient"
        )
        cancel = sub.add_parser("cancel", help="stop delivering queued or deferred recipients")
        cancel.add_argument("ids", nargs="+", metavar="ID", help=ID_HELP)

    def handle(self, *args: Any, **options: Any) -> None:
        getattr(self, f"do_{options['action']}")(options)

    # --- list -------------------------------------------------------------------------
    def do_list(self, options: dict[str, Any]) -> None:
        qs = (
            Recipient.objects.select_related("message", "smtp_user", "account")
            .defer("message__raw")
            .order_by("priority", "next_attempt_at", "id")
        )
        status = options["status"]
        if status == "pending":
            qs = qs.filter(status__in=PENDING_STATUSES)
        elif status != "all":
            qs = qs.filter(status=status)
        if options["user"]:
            user = SmtpUser.objects.filter(username=options["user"]).first()
            if user is None:
                raise CommandError(f"No SMTP+ user with username {options['user']!r}")
            qs = qs.filter(smtp_user=user)
        count = 0
        for r in qs.iterator(chunk_size=2000):
            count += 1
            if options["json"]:
                self.stdout.write(json.dumps(recipient_json(r), ensure_ascii=False))
                continue
            when = r.next_attempt_at if r.status in PENDING_STATUSES else r.finished_at
            self.stdout.write(
                f"{r.pk:>8} {r.message.queue_id:<12} {r.status:<9} {r.attempts:>3} "
                f"{when:%Y-%m-%d %H:%M:%S} "
                f"{r.smtp_user.username if r.smtp_user else '-'} "
                f"<{r.message.envelope_from}> -> <{r.address}>"
                + (f"  [{_reply(r.last_code, r.last_enhanced, r.last_text)}]" if r.attempts else "")
            )
        if not options["json"]:
            self.stdout.write(f"-- {count} recipient(s)")

    # --- show -------------------------------------------------------------------------
    def do_show(self, options: dict[str, Any]) -> None:
        recipients = resolve_ids([options["id"]])
        message = Message.objects.select_related("account", "smtp_user").get(
            pk=recipients.values("message_id")[:1]
        )
        w = self.stdout.write
        w(f"Message {message.queue_id}")
        w(f"  account:    {message.account.name}")
        w(f"  SMTP+ user: {message.smtp_user.username if message.smtp_user else '-'}")
        w(f"  received:   {message.created:%Y-%m-%d %H:%M:%S %Z}")
        w(f"  client:     {message.client_ip or '-'} port {message.port or '-'} "
          f"(HELO {message.client_helo or '-'})")
        w(f"  sender:     <{message.envelope_from}>")
        w(f"  size:       {message.size} bytes")
        w("Headers:")
        if message.raw is None:
            w("  (message body removed by retention)")
            w(f"  From: {message.header_from}")
            w(f"  Subject: {message.subject}")
        else:
            for name, value in decoded_headers(message.raw):
                w(f"  {name}: {' '.join(value.split())}")
        w("Recipients:")
        for r in message.recipients.prefetch_related("attempt_set").order_by("id"):
            line = f"  {r.pk} <{r.address}> {r.status}, {r.attempts} attempt(s)"
            if r.status in PENDING_STATUSES:
                line += f", next {r.next_attempt_at:%Y-%m-%d %H:%M:%S}"
            if r.status in FINAL_STATUSES and r.fail_reason:
                line += f" ({r.fail_reason})"
            w(line)
            for a in r.attempt_set.all():
                w(
                    f"      {a.started:%Y-%m-%d %H:%M:%S} {a.upstream or '-'} {a.outcome}: "
                    f"{_reply(a.code, a.enhanced, a.text)} ({a.duration_ms} ms)"
                )

    # --- retry / cancel ---------------------------------------------------------------
    def do_retry(self, options: dict[str, Any]) -> None:
        if options["all_deferred"] == bool(options["ids"]):
            raise CommandError("give recipient/message ids or --all-deferred (not both)")
        if options["all_deferred"]:
            qs = Recipient.objects.filter(status=RecipientStatus.DEFERRED)
        else:
            qs = resolve_ids(options["ids"])
        changed = actions.retry_now(qs, actor=Actor.command_line())
        self.stdout.write(f"{changed} recipient(s) due for delivery now")

    def do_cancel(self, options: dict[str, Any]) -> None:
        changed = actions.cancel(resolve_ids(options["ids"]), actor=Actor.command_line())
        self.stdout.write(f"{changed} recipient(s) cancelled")
