"""/api/v1/ endpoints of the relay: the messages log (the console's filters and keyset
pagination), a message with its recipients and attempts, retry and cancel (the console's
audited queue actions), and the relay events."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.http import HttpRequest
from ninja import Field, Query, Router, Schema

from accounts.api.auth import AUTH_ERRORS, ApiError, account_of, not_found, writer
from relay.console.filters import filter_events, filter_messages, keyset_page
from relay.delivery import actions
from relay.forms import EventFilterForm, MessageFilterForm
from relay.headers import display_subject
from relay.models import Message, RecipientStatus
from relay.sendapi import api as send_api

router = Router(tags=["Messages and relay events"])
# POST /messages and /messages/raw: sending (relay.sendapi), on this router because
# GET /messages is here; first, so that /messages/raw is not read as /messages/{pk}.
send_api.add_to(router)


class PageParams(Schema):
    before: str | None = Field(None, description="Cursor from `older`: the next older page.")
    after: str | None = Field(None, description="Cursor from `newer`: the next newer page.")


class MessageFilters(PageParams):
    user: int | None = Field(None, description="Id of an SMTP+ user of the account.")
    status: RecipientStatus | None = Field(None, description="A recipient has this status.")
    sender: str | None = None
    sender_match: str | None = Field(None, pattern="^(contains|equals)$")
    recipient: str | None = Field(None, description="A recipient address contains this.")
    date_from: date | None = None
    date_to: date | None = None


class MessageOut(Schema):
    id: int
    queue_id: str
    created: datetime
    smtp_user_id: int | None
    envelope_from: str
    subject: str
    size: int


class AttemptOut(Schema):
    started: datetime
    duration_ms: int
    upstream: str
    code: int | None
    enhanced: str
    text: str
    outcome: str


class RecipientOut(Schema):
    id: int
    address: str
    status: str
    attempts: int
    next_attempt_at: datetime
    finished_at: datetime | None
    last_code: int | None
    last_enhanced: str
    last_text: str
    fail_reason: str
    attempt_log: list[AttemptOut]


class MessageDetailOut(MessageOut):
    header_from: str
    message_id: str
    client_ip: str | None
    port: int | None
    recipients: list[RecipientOut]


class MessagePageOut(Schema):
    items: list[MessageOut]
    newer: str | None
    older: str | None


class QueueActionIn(Schema):
    recipient: int | None = Field(None, description="One recipient's id; default: all of them.")


class QueueActionOut(Schema):
    changed: int = Field(description="How many recipients the action changed.")


class EventFilters(PageParams):
    user: int | None = None
    kind: str | None = None


class EventOut(Schema):
    id: int
    kind: str
    created: datetime
    last_seen: datetime
    count: int
    smtp_user_id: int | None
    client_ip: str | None
    port: int | None
    username: str
    address: str
    reason: str
    reply: str


class EventPageOut(Schema):
    items: list[EventOut]
    newer: str | None
    older: str | None


def _cleaned(form: MessageFilterForm | EventFilterForm) -> dict[str, Any]:
    if not form.is_valid():
        raise ApiError(422, "invalid_filters", form.errors.as_text())
    return form.cleaned_data


def _form_data(filters: Schema) -> dict[str, str]:
    raw = filters.model_dump(exclude={"before", "after"}, exclude_none=True)
    return {k: str(v) for k, v in raw.items()}


@router.get("/messages", response={200: MessagePageOut, **AUTH_ERRORS})
def list_messages(request: HttpRequest, filters: Query[MessageFilters]) -> Any:
    """The account's messages, newest first, 50 a page, filtered like the console's log."""
    account = account_of(request)
    cleaned = _cleaned(MessageFilterForm(_form_data(filters), account))
    page = keyset_page(filter_messages(account, cleaned).defer("raw"), time_field="created",
                       before=filters.before, after=filters.after)
    items = [{**_message(m)} for m in page.items]
    return {"items": items, "newer": page.newer, "older": page.older}


def _message(message: Message) -> dict[str, Any]:
    fields = MessageOut.model_fields
    data = {name: getattr(message, name) for name in fields}
    data["subject"] = display_subject(message.subject)
    return data


@router.get("/messages/{pk}", response={200: MessageDetailOut, **AUTH_ERRORS})
def show_message(request: HttpRequest, pk: int) -> Any:
    message = Message.objects.defer("raw").filter(pk=pk, account=account_of(request)).first()
    if message is None:
        raise not_found("message")
    recipients = []
    for r in message.recipients.prefetch_related("attempt_set").order_by("id"):
        data = {name: getattr(r, name) for name in RecipientOut.model_fields if name != "attempt_log"}
        data["attempt_log"] = list(r.attempt_set.all())
        recipients.append(data)
    return {**_message(message), "header_from": message.header_from,
            "message_id": message.message_id, "client_ip": message.client_ip,
            "port": message.port, "recipients": recipients}


def _queue_action(request: HttpRequest, pk: int, body: QueueActionIn | None, name: str) -> Any:
    actor = writer(request)
    account = account_of(request)
    if not Message.objects.filter(pk=pk, account=account).exists():
        raise not_found("message")
    recipients = Message.objects.get(pk=pk).recipients.all()
    if body is not None and body.recipient is not None:
        recipients = recipients.filter(pk=body.recipient)
        if not recipients.exists():
            raise not_found("recipient of this message")
    if name == "retry":
        changed = actions.retry_now(recipients.filter(status__in=actions.RETRY_STATUSES),
                                    actor=actor, account=account)
    else:
        changed = actions.cancel(recipients.filter(status__in=actions.CANCEL_STATUSES),
                                 actor=actor, account=account)
    return {"changed": changed}


@router.post("/messages/{pk}/retry", response={200: QueueActionOut, **AUTH_ERRORS})
def retry_message(request: HttpRequest, pk: int, body: QueueActionIn | None = None) -> Any:
    """Deliver failed, deferred or cancelled recipients now."""
    return _queue_action(request, pk, body, "retry")


@router.post("/messages/{pk}/cancel", response={200: QueueActionOut, **AUTH_ERRORS})
def cancel_message(request: HttpRequest, pk: int, body: QueueActionIn | None = None) -> Any:
    """Stop delivering queued and deferred recipients."""
    return _queue_action(request, pk, body, "cancel")


@router.get("/relay-events", response={200: EventPageOut, **AUTH_ERRORS})
def list_events(request: HttpRequest, filters: Query[EventFilters]) -> Any:
    """Refused logins, senders and messages, newest first, like the console's page."""
    account = account_of(request)
    cleaned = _cleaned(EventFilterForm(_form_data(filters), account))
    page = keyset_page(filter_events(account, cleaned), time_field="last_seen",
                       before=filters.before, after=filters.after)
    return {"items": page.items, "newer": page.newer, "older": page.older}
