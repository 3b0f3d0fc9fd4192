"""Who changes what: the `Actor` value and the one function that writes every audit row.

Domain actions take an `Actor`, never an HTTP request: a view builds it once from its
request, a management command says it is the command line, SMTP+ itself names what it
does. So the same action is callable — and audited the same way — from a page, a
command or a test, and no domain module needs to know what a request looks like.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any

from django.contrib.auth.models import User
from django.db import models
from django.http import HttpRequest

from accounts.models import Account, ApiKey, AuditEvent
from accounts.tenancy import client_ip

ANONYMOUS_LABEL = "anonymous visitor"


@dataclass(frozen=True)
class Actor:
    """Who makes a change and from where: what its audit row records.

    `account` is the console's current account, if any: actions on a selection scope it
    to that account even when the caller forgot to filter it.
    """

    label: str
    user: User | None = None
    ip: str | None = None
    account: Account | None = None

    @classmethod
    def from_request(cls, request: HttpRequest) -> Actor:
        user = request.user if request.user.is_authenticated else None
        return cls(
            label=user.get_username() if user is not None else ANONYMOUS_LABEL,
            user=user,
            ip=client_ip(request),
            account=getattr(request, "account", None),
        )

    @classmethod
    def command_line(cls, argv: list[str] | None = None) -> Actor:
        """The operator at a shell: labelled with the command and its first argument."""
        args = " ".join((sys.argv if argv is None else argv)[1:3])
        return cls(label=f"command line: manage.py {args}".strip())

    @classmethod
    def system(cls, label: str) -> Actor:
        """SMTP+ itself, doing something on its own (e.g. a new account's default rule)."""
        return cls(label=label)

    @classmethod
    def api_key(cls, key: ApiKey, ip: str | None = None) -> Actor:
        """A call to /api/v1/ with an API key: labelled with the key's name."""
        return cls(label=f"API key: {key.name}", ip=ip, account=key.account)

    def labelled(self, label: str) -> Actor:
        """The same actor (user, address) under another name in the log."""
        return replace(self, label=label)


def record(
    action: str,
    *,
    account: Account | None,
    actor: Actor | None = None,
    target: models.Model | None = None,
    target_label: str = "",
    details: dict[str, Any] | None = None,
) -> AuditEvent:
    """Write an audit event; without `actor` it is the command line.

    Never put a password in `details`.
    """
    actor = actor or Actor.command_line()
    return AuditEvent.objects.create(
        account=account,
        actor=actor.user,
        actor_label=actor.label[:300],
        action=action,
        target_type=(target._meta.model_name or "") if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        target_label=(target_label or (str(target) if target is not None else ""))[:300],
        details=details or {},
        ip=actor.ip,
    )
