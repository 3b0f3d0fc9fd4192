"""One function writes every audit row, so no state change forgets its record."""

from __future__ import annotations

import sys
from typing import Any

from django.db import models
from django.http import HttpRequest

from accounts.models import Account, AuditEvent
from accounts.tenancy import client_ip


def command_line_actor() -> str:
    args = " ".join(a for a in sys.argv[1:3])
    return f"command line: manage.py {args}".strip()


def record(
    action: str,
    *,
    account: Account | None,
    request: HttpRequest | None = None,
    actor_label: str | None = None,
    target: models.Model | None = None,
    target_label: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write an audit event.

    From a view pass `request` (actor and IP are taken from it); from a management command
    pass nothing and the actor is the command line. Never put a password in `details`.
    """
    actor = None
    ip = None
    if request is not None:
        if request.user.is_authenticated:
            actor = request.user
        ip = client_ip(request)
    if actor_label is None:
        if actor is not None:
            actor_label = actor.get_username()
        else:
            actor_label = command_line_actor()
    return AuditEvent.objects.create(
        account=account,
        actor=actor,
        actor_label=actor_label[:300],
        action=action,
        target_type=(target._meta.model_name or "") if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label or (str(target) if target is not None else ""))[:300],
        details=details or {},
        ip=ip,
    )
