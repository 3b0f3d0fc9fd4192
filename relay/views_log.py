"""Messages log, message detail and the retry/cancel actions on recipients.

Everything is scoped to `request.account`; state changes go through `relay.actions`
(which writes the audit rows) and are POST-only and for admins; viewers only read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

from django.contrib import messages as flash
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts.models import Role
from accounts.tenancy import AccountRequest, member_required
from relay.accept import decode_words
from relay.logfilters import (
    MessageFilterForm,
    filter_messages,
    filter_params,
    keyset_page,
    selection_recipients,
)
from relay.models import Message, Recipient, RecipientStatus

# Which recipients each action touches.
RETRY_STATUSES: tuple[str, ...] = (
    RecipientStatus.DEFERRED, RecipientStatus.FAILED, RecipientStatus.CANCELLED,
)
BULK_RETRY_STATUSES: tuple[str, ...] = (RecipientStatus.FAILED, RecipientStatus.DEFERRED)
CANCEL_STATUSES: tuple[str, ...] = (RecipientStatus.QUEUED, RecipientStatus.DEFERRED)
RECIPIENT_BADGES = 5  # badges shown per message in the log before "+N more"

_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?.*?\?=")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def display_subject(subject: str) -> str:
    """The subject as people read it: leftover RFC 2047 encoded-words decoded.

    The relay stores subjects decoded; this catches what it could not (or older rows),
    e.g. the seed's `=?utf-8?Q?I love you =E2=99=A5?=` → "I love you ♥". The result is
    plain text: templates escape it like any other user data.
    """
    if not _ENCODED_WORD.search(subject):
        return subject
    return decode_words(subject)


def decoded_headers(raw: bytes | memoryview | None) -> list[tuple[str, str]]:
    """(name, decoded value) for each header of a stored message, in order.

    Only the header block is parsed: the body is never decoded, let alone rendered.
    """
    if raw is None:
        return []
    data = bytes(raw)
    end = _HEADER_END.search(data)
    head = data[: end.end()] if end else data
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(head)
    result: list[tuple[str, str]] = []
    for name, value in parsed.raw_items():
        try:
            text = str(policy.default.header_fetch_parse(name, value))
        except Exception:  # a malformed header must not hide the others
            text = display_subject(" ".join(str(value).split()))
        result.append((name, text))
    return result


def _actions() -> Any:
    # Imported late: the delivery side owns relay.actions.
    from relay import actions

    return actions


def retry_recipients(recipients: QuerySet[Recipient], request: AccountRequest) -> int:
    return int(_actions().retry_now(recipients, request=request, account=request.account))


def cancel_recipients(recipients: QuerySet[Recipient], request: AccountRequest) -> int:
    return int(_actions().cancel(recipients, request=request, account=request.account))


def log_queryset(account: Any, filters: dict[str, Any]) -> QuerySet[Message]:
    """What the log page lists: no raw bytes, recipients prefetched in one query."""
    recipients = Recipient.objects.only(
        "id", "message", "address", "status", "last_code", "last_enhanced", "last_text",
        "fail_reason",
    ).order_by("id")
    return (
        filter_messages(account, filters)
        .select_related("smtp_user")
        .only(
            "id", "created", "envelope_from", "subject", "size", "queue_id",
            "smtp_user__id", "smtp_user__name", "smtp_user__username",
        )
        .prefetch_related(Prefetch("recipients", queryset=recipients))
    )


@dataclass
class LogRow:
    message: Message
    url: str
    subject: str
    recipients: list[Recipient]
    more: int


@member_required()
def message_list(request: AccountRequest) -> HttpResponse:
    account = request.account
    form = MessageFilterForm(request.GET, account)
    filters = form.cleaned_data if form.is_valid() else {}
    page = keyset_page(
        log_queryset(account, filters), time_field="created",
        before=request.GET.get("before"), after=request.GET.get("after"),
    )
    rows = []
    base = reverse("relay:messages")  # detail pages are messages/<pk>/: one reverse, not 100
    for message in page.items:
        shown = list(message.recipients.all())
        rows.append(LogRow(message, f"{base}{message.pk}/", display_subject(message.subject),
                           shown[:RECIPIENT_BADGES], max(0, len(shown) - RECIPIENT_BADGES)))
    return render(request, "relay/message_list.html", {
        "form": form,
        "rows": rows,
        "page": page,
        "filter_query": urlencode(filter_params(request.GET)),
        "filtered": bool(filter_params(request.GET)),
        "can_edit": request.membership.can_edit,
    })


@member_required()
def message_detail(request: AccountRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(
        Message.objects.select_related("smtp_user"), pk=pk, account=request.account
    )
    recipients = list(message.recipients.prefetch_related("attempt_set").order_by("id"))
    return render(request, "relay/message_detail.html", {
        "message": message,
        "subject": display_subject(message.subject),
        "headers": decoded_headers(message.raw),
        "recipients": recipients,
        "retry_statuses": RETRY_STATUSES,
        "cancel_statuses": CANCEL_STATUSES,
        "can_retry": any(r.status in RETRY_STATUSES for r in recipients),
        "can_cancel": any(r.status in CANCEL_STATUSES for r in recipients),
        "can_edit": request.membership.can_edit,
    })


def _chosen_recipients(request: HttpRequest, message: Message, statuses: tuple[str, ...]) -> QuerySet[Recipient]:
    qs = message.recipients.filter(status__in=statuses)
    chosen = request.POST.get("recipient")
    if chosen:
        recipient = get_object_or_404(message.recipients.all(), pk=chosen if chosen.isdigit() else -1)
        qs = qs.filter(pk=recipient.pk)
    return qs


@require_POST
@member_required(Role.ADMIN)
def message_retry(request: AccountRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(Message, pk=pk, account=request.account)
    done = retry_recipients(_chosen_recipients(request, message, RETRY_STATUSES), request)
    flash.success(request, f"{done} recipient(s) queued for delivery now.")
    return redirect("relay:message_detail", pk=message.pk)


@require_POST
@member_required(Role.ADMIN)
def message_cancel(request: AccountRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(Message, pk=pk, account=request.account)
    done = cancel_recipients(_chosen_recipients(request, message, CANCEL_STATUSES), request)
    flash.success(request, f"{done} recipient(s) cancelled.")
    return redirect("relay:message_detail", pk=message.pk)


BULK_ACTIONS = {
    "retry": ("Retry now every failed or deferred recipient", BULK_RETRY_STATUSES),
    "cancel": ("Cancel every pending (queued or deferred) recipient", CANCEL_STATUSES),
}


@member_required(Role.ADMIN)
def messages_bulk(request: AccountRequest) -> HttpResponse:
    """GET: how many recipients the action would touch, and a confirm button. POST: do it."""
    data = request.POST if request.method == "POST" else request.GET
    action = data.get("action", "")
    if action not in BULK_ACTIONS:
        flash.error(request, "Unknown action.")
        return redirect("relay:messages")
    account = request.account
    form = MessageFilterForm(data, account)
    query = urlencode(filter_params(data))
    back = reverse("relay:messages") + (f"?{query}" if query else "")
    if not form.is_valid():
        flash.error(request, "The filters are not valid; fix them first.")
        return redirect(back)
    label, statuses = BULK_ACTIONS[action]
    selection = selection_recipients(account, form.cleaned_data, statuses)
    if request.method == "POST":
        if action == "retry":
            done = retry_recipients(selection, request)
            flash.success(request, f"{done} recipient(s) queued for delivery now.")
        else:
            done = cancel_recipients(selection, request)
            flash.success(request, f"{done} recipient(s) cancelled.")
        return redirect(back)
    return render(request, "relay/message_bulk_confirm.html", {
        "action": action,
        "label": label,
        "count": selection.count(),
        "params": filter_params(data),
        "described": [(form.fields[name].label, form.cleaned_data[name])
                      for name in filter_params(data)],
        "back": back,
    })
