"""Creating and revoking API keys, each with its audit row."""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.api.keys import digest_key, generate_key
from accounts.audit import Actor
from accounts.models import Account, ApiKey, ApiKeyRole, SmtpUser


@transaction.atomic
def create_api_key(
    account: Account,
    *,
    name: str,
    role: str = ApiKeyRole.READ_ONLY,
    expires_at: datetime | None = None,
    allowed_networks: list[str] | None = None,
    created_by: User | None = None,
    actor: Actor | None = None,
    smtp_user: SmtpUser | None = None,
) -> tuple[ApiKey, str]:
    """A new key for `account`: (row, the key itself — returned only here, never stored).

    With `smtp_user` it is a send key: it sends as that user and does nothing else (its
    role is read only, and unused)."""
    if smtp_user is not None:
        if smtp_user.account_id != account.pk:
            raise ValueError("the SMTP+ user belongs to another account")
        role = ApiKeyRole.READ_ONLY
    raw, prefix = generate_key()
    key = ApiKey.objects.create(
        account=account, name=name.strip(), role=ApiKeyRole(role), prefix=prefix,
        digest=digest_key(raw), expires_at=expires_at,
        allowed_networks=allowed_networks or [], created_by=created_by, smtp_user=smtp_user,
    )
    audit.record(
        "apikey.create", account=account, actor=actor, target=key,
        details={"role": key.role, "prefix": prefix,
                 "expires_at": expires_at.isoformat() if expires_at else None,
                 "allowed_networks": key.allowed_networks,
                 "sends_as": smtp_user.username if smtp_user else None},
    )
    return key, raw


@transaction.atomic
def revoke_api_key(key: ApiKey, actor: Actor | None = None) -> bool:
    """Revoke a key at once; returns False if it already was."""
    if key.revoked_at is not None:
        return False
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
    audit.record("apikey.revoke", account=key.account, actor=actor, target=key)
    return True
