"""/api/v1/ send endpoints: `POST /messages` (JSON) and `POST /messages/raw` (RFC 5322).

Authenticated with a send key or the SMTP+ user's own credentials (`relay.sendapi.auth`),
judged by the relay's checks and queued with the relay's storage (`relay.sendapi.submit`),
answered 202 with the queue id only after the commit. A refusal answers the relay's SMTP
reply as JSON (`relay.sendapi.errors`) and records the relay's event.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from django.db import DatabaseError, IntegrityError
from django.http import HttpRequest, HttpResponse
from ninja import Field, Query, Router, Schema, Status

from relay.models import EventKind
from relay.sendapi import idempotency
from relay.sendapi.auth import SendKeyAuth, SmtpUserBasicAuth, relay_config, sender_of
from relay.sendapi.compose import MessageIn, compose
from relay.sendapi.errors import SendErrorOut, refusal, rejected
from relay.sendapi.events import record_event
from relay.sendapi.submit import Envelope, Queued, crlf, judge, refuse, store
from relay.smtp import replies
from relay.smtp.checks import Reject

log = logging.getLogger(__name__)
# The send operations share their paths with the messages log (GET /messages), and ninja
# serves one path from one router: `add_to()` puts them on the relay's router.
SEND_AUTH = [SendKeyAuth(), SmtpUserBasicAuth()]
STORE_RETRY_AFTER = "30"

SEND_ERRORS: dict[int, Any] = {
    status: SendErrorOut for status in (400, 401, 403, 413, 422, 429, 503)
}
IDEMPOTENCY_DOC = {
    "parameters": [{
        "in": "header", "name": idempotency.HEADER, "required": False,
        "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.MAX_LENGTH},
        "description": "Sending again with the same key within 24 hours returns the first "
                       "answer instead of queueing the message twice.",
    }],
}


class QueuedOut(Schema):
    id: int = Field(description="The message's id: GET /api/v1/messages/{id} shows it.")
    queue_id: str = Field(description="The queue id, as in the relay's `250 … queued as`.")
    message_id: str = Field(description="The message's Message-ID header.")
    recipients: int


class RawParams(Schema):
    from_: str = Field(alias="from", max_length=320, description="The envelope sender.")
    to: list[str] = Field(min_length=1, description="The envelope recipients (repeat `to`).")
    smtputf8: bool = Field(False, description="The message needs SMTPUTF8 (as the SMTP "
                           "parameter); implied by a non-ASCII envelope address.")

    model_config = {"populate_by_name": True}


def _queued(queued: Queued) -> dict[str, Any]:
    return {"id": queued.id, "queue_id": queued.queue_id, "message_id": queued.message_id,
            "recipients": queued.recipients}


def _replayed(request: HttpRequest, status: int, body: dict[str, Any]) -> HttpResponse:
    response = HttpResponse(json.dumps(body), status=status, content_type="application/json")
    response["Idempotent-Replayed"] = "true"
    return response


def _send(request: HttpRequest, envelope: Envelope) -> Any:
    sender = sender_of(request)
    config = relay_config(request)
    key = idempotency.key_of(request)
    fingerprint = idempotency.fingerprint(request) if key is not None else ""
    if key is not None and (found := idempotency.earlier(sender.scope, key, fingerprint)):
        return _replayed(request, found.status, found.response)
    verdict = judge(sender, envelope, config)
    if isinstance(verdict, Reject):
        refuse(request, sender, verdict)
        raise rejected(verdict)

    def remember(queued: Queued) -> None:
        assert key is not None
        idempotency.remember(sender.scope, key, fingerprint, 202, _queued(queued))

    try:
        queued = store(request, sender, envelope, verdict, config,
                       also=remember if key is not None else None)
    except IntegrityError:
        if key is not None and (found := idempotency.earlier(sender.scope, key, fingerprint)):
            return _replayed(request, found.status, found.response)  # a twin request got there first
        raise _store_failed(request, sender.user.username, envelope) from None
    except DatabaseError:
        raise _store_failed(request, sender.user.username, envelope) from None
    return Status(202, _queued(queued))


def _store_failed(request: HttpRequest, username: str, envelope: Envelope) -> Exception:
    log.exception("could not store a message of the send API from %s", username)
    sender = sender_of(request)
    record_event(request, EventKind.STORE_FAILED, replies.STORE_FAILED, username=username,
                 address=envelope.sender, reason="database error",
                 account_id=sender.user.account_id, smtp_user_id=sender.user.pk)
    return refusal(503, "store_failed", replies.STORE_FAILED,
                   headers={"Retry-After": STORE_RETRY_AFTER})


def send_message(request: HttpRequest, body: MessageIn) -> Any:
    """Queue a message given as JSON, with the relay's rules: `from` must be authorized
    for the SMTP+ user (envelope and From: header), the relay's size, recipient and
    hourly limits apply. 202 only once the message is stored."""
    composed = compose(body, relay_config(request).hostname)
    return _send(request, Envelope(composed.envelope_from, composed.recipients, composed.raw,
                                   composed.smtputf8))


RAW_BODY = {
    "requestBody": {
        "required": True,
        "description": "The message as RFC 5322 bytes (headers, empty line, body); bare LF "
                       "line ends are taken as CRLF.",
        "content": {"message/rfc822": {"schema": {"type": "string", "format": "binary"}}},
    },
    **IDEMPOTENCY_DOC,
}


def send_raw_message(request: HttpRequest, params: Query[RawParams]) -> Any:
    """Queue a message given as its bytes, with the envelope in the query
    (`?from=…&to=…&to=…`): the relay's rules apply to the envelope and to the headers
    as they are (a Bcc: header is sent as given)."""
    raw = crlf(request.body)
    if not raw.strip():
        raise refusal(422, "invalid_message", "The request body is empty: send the message's "
                      "bytes (Content-Type: message/rfc822).")
    smtputf8 = params.smtputf8 or not all(a.isascii() for a in [params.from_, *params.to])
    return _send(request, Envelope(params.from_, list(params.to), raw, smtputf8))



def add_to(router: Router) -> None:
    """Add the send operations to `router` (the relay's /api/v1/ router)."""
    common: dict[str, Any] = {"auth": SEND_AUTH, "tags": ["Sending"],
                              "response": {202: QueuedOut, **SEND_ERRORS}}
    router.add_api_operation("/messages", ["POST"], send_message,
                             openapi_extra=IDEMPOTENCY_DOC, **common)
    router.add_api_operation("/messages/raw", ["POST"], send_raw_message,
                             openapi_extra=RAW_BODY, **common)
