"""Messages log, message detail and the retry/cancel actions on recipients.

Everything is scoped to `request.account`; state changes go through `relay.actions`
(which writes the audit rows) and are POST-only and for admins; viewers only read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import messages as flash
from django.db.models import Count, OuterRef, Prefetch, QuerySet, Subquery
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts.audit import Actor
from accounts.models import Role
from accounts.tenancy import AccountRequest, member_required
from relay import explain
from relay.console.filters import (
    filter_messages,
    filter_params,
    keyset_page,
    selection_recipients,
)
from relay.delivery import actions
from relay.forms import MessageFilterForm
from relay.headers import decoded_headers, display_subject
from relay.models import Attempt, Message, Recipient, RecipientStatus

# Which recipients each action touches (bulk retry leaves cancelled ones alone).
BULK_RETRY_STATUSES: tuple[str, ...] = (RecipientStatus.FAILED, RecipientStatus.DEFERRED)
RECIPIENT_BADGES = 5  # badges shown per message in the log before "+N more"


@dataclass(frozen=True)
class QueueAction:
    """Retry or cancel, from a message's page or on the log's selection."""

    apply: Callable[..., int]  # relay.actions.retry_now or relay.actions.cancel
    done: str  # the flash message, after the number of recipients
    statuses: tuple[str, ...]  # the recipients it touches on a message's page
    bulk_statuses: tuple[str, ...]  # ... and in the log's selection
    bulk_label: str


QUEUE_ACTIONS = {
    "retry": QueueAction(actions.retry_now, "queued for delivery now", actions.RETRY_STATUSES,
                         BULK_RETRY_STATUSES, "Retry now every failed or deferred recipient"),
    "cancel": QueueAction(actions.cancel, "cancelled", actions.CANCEL_STATUSES, actions.CANCEL_STATUSES,
                          "Cancel every pending (queued or deferred) recipient"),
}


def _apply(action: QueueAction, recipients: QuerySet[Recipient], request: AccountRequest) -> None:
    done = action.apply(recipients, actor=Actor.from_request(request), account=request.account)
    flash.success(request, f"{done} recipient(s) {action.done}.")


def log_queryset(account: Any, filters: dict[str, Any]) -> QuerySet[Message]:
    """What the log page lists: no raw bytes; the first recipients of each message (the
    badges) in one query, and how many there are in all."""
    badges = Recipient.objects.only(
        "id", "message", "address", "status", "last_code", "last_enhanced", "last_text",
        "fail_reason",
    ).order_by("id")[:RECIPIENT_BADGES]
    count = (Recipient.objects.filter(message=OuterRef("pk")).order_by().values("message")
             .annotate(n=Count("pk")).values("n"))
    return (
        filter_messages(account, filters)
        .select_related("smtp_user")
        .only(
            "id", "created", "envelope_from", "subject", "size", "queue_id",
            "smtp_user__id", "smtp_user__name", "smtp_user__username",
        )
        .annotate(recipient_count=Subquery(count))
        .prefetch_related(Prefetch("recipients", queryset=badges, to_attr="badges"))
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
        shown = message.badges
        rows.append(LogRow(message, f"{base}{message.pk}/", display_subject(message.subject),
                           shown, max(0, (message.recipient_count or 0) - len(shown))))
    params = filter_params(form)
    return render(request, "relay/message_list.html", {
        "form": form,
        "rows": rows,
        "page": page,
        "filter_query": urlencode(params),
        "filtered": bool(params),
        "can_edit": request.membership.can_edit,
    })


@dataclass
class AttemptRow:
    attempt: Attempt
    reading: explain.Reading | None  # None for a delivery


@dataclass
class RecipientRow:
    """A recipient on its message's page, read by the same explainer as the alerts."""

    recipient: Recipient
    reading: explain.Reading | None  # None while nothing went wrong
    attempts: list[AttemptRow]


def recipient_row(r: Recipient) -> RecipientRow:
    attempts = [
        AttemptRow(a, None if a.outcome == "delivered" else explain.explain_attempt(
            a.code, a.enhanced, a.text, a.reason))
        for a in r.attempt_set.all()
    ]
    reading = None
    stopped = r.status in (RecipientStatus.FAILED, RecipientStatus.CANCELLED)
    if stopped or (r.status != RecipientStatus.DELIVERED and r.attempts > 0):
        reading = explain.explain_delivery(
            r.last_code, r.last_enhanced, r.last_text, r.fail_reason, last_reason=r.last_reason
        )
    return RecipientRow(r, reading, attempts)


@member_required()
def message_detail(request: AccountRequest, pk: int) -> HttpResponse:
    message = get_object_or_404(
        Message.objects.select_related("smtp_user", "dsn_of"), pk=pk, account=request.account
    )
    recipients = list(message.recipients.prefetch_related(
        "attempt_set", "dsn_records__dsn").order_by("id"))
    return render(request, "relay/message_detail.html", {
        "message": message,
        "subject": display_subject(message.subject),
        "headers": decoded_headers(message.raw),
        "recipients": recipients,
        "rows": [recipient_row(r) for r in recipients],
        "retry_statuses": actions.RETRY_STATUSES,
        "cancel_statuses": actions.CANCEL_STATUSES,
        "can_retry": any(r.status in actions.RETRY_STATUSES for r in recipients),
        # What "Retry now (whole message)" touches, said before it is done.
        "n_retry": sum(r.status in actions.RETRY_STATUSES for r in recipients),
        "n_failed": sum(r.status == RecipientStatus.FAILED for r in recipients),
        "n_delivered": sum(r.status == RecipientStatus.DELIVERED for r in recipients),
        "can_cancel": any(r.status in actions.CANCEL_STATUSES for r in recipients),
        "can_edit": request.membership.can_edit,
    })


def _chosen_recipients(request: AccountRequest, pk: int, statuses: tuple[str, ...]) -> QuerySet[Recipient]:
    """The recipients of message `pk` an action on its page touches: the one posted as
    `recipient`, or all of them. Not found unless the message (and that recipient) is the
    current account's."""
    recipients = Recipient.objects.filter(message_id=pk, message__account=request.account)
    chosen = request.POST.get("recipient")
    if chosen:
        recipients = recipients.filter(pk=chosen if chosen.isdigit() else -1)
        found = recipients.exists()
    else:
        found = Message.objects.filter(pk=pk, account=request.account).exists()
    if not found:
        raise Http404("No such message or recipient.")
    return recipients.filter(status__in=statuses)


@member_required(Role.ADMIN)
@require_POST
def message_action(request: AccountRequest, pk: int, action: str) -> HttpResponse:
    """Retry or cancel one recipient, or every recipient it applies to, of one message."""
    queue_action = QUEUE_ACTIONS[action]
    _apply(queue_action, _chosen_recipients(request, pk, queue_action.statuses), request)
    return redirect("relay:message_detail", pk=pk)


@member_required(Role.ADMIN)
def messages_bulk(request: AccountRequest) -> HttpResponse:
    """GET: how many recipients the action would touch, and a confirm button. POST: do it."""
    data = request.POST if request.method == "POST" else request.GET
    action = data.get("action", "")
    queue_action = QUEUE_ACTIONS.get(action)
    if queue_action is None:
        flash.error(request, "Unknown action.")
        return redirect("relay:messages")
    account = request.account
    form = MessageFilterForm(data, account)
    params = filter_params(form)
    query = urlencode(params)
    back = reverse("relay:messages") + (f"?{query}" if query else "")
    if not form.is_valid():
        flash.error(request, "The filters are not valid; fix them first.")
        return redirect(back)
    selection = selection_recipients(account, form.cleaned_data, queue_action.bulk_statuses)
    if request.method == "POST":
        _apply(queue_action, selection, request)
        return redirect(back)
    return render(request, "relay/message_bulk_confirm.html", {
        "action": action,
        "label": queue_action.bulk_label,
        "count": selection.count(),
        "params": params,
        "described": [(form.fields[name].label, form.cleaned_data[name]) for name in params],
        "back": back,
    })
