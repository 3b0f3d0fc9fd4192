"""Relay events of the send API: the records a refused SMTP command writes, written at
once (an HTTP request has no event loop to buffer them on) through the relay's own
`write_events`, which folds an identical event of the last minute into its row.

Events of the send API have no port: that is how the console tells them apart."""

from __future__ import annotations

import logging

from django.db import DatabaseError
from django.http import HttpRequest

from accounts.tenancy import client_ip
from relay.smtp.events import EventBuffer, write_events

log = logging.getLogger(__name__)


def record_event(request: HttpRequest, kind: str, reply: str, *, username: str = "",
                 address: str = "", reason: str = "", account_id: int | None = None,
                 smtp_user_id: int | None = None) -> None:
    buffer = EventBuffer()
    buffer.record(kind, client_ip=client_ip(request), username=username, address=address,
                  reason=reason, reply=reply, account_id=account_id,
                  smtp_user_id=smtp_user_id)
    try:
        write_events(buffer.take())
    except DatabaseError:
        # The refusal is still answered; the database error is the bigger news.
        log.exception("could not record a %s event of the send API", kind)
