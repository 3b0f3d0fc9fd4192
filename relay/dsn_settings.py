"""Where an SMTP+ user's delivery status notifications go: to the envelope sender (the
default), to another address (the IT staff, say), or nowhere (a bulk sender that reads
the messages log or the API instead). One audited function changes it."""

from __future__ import annotations

from django.db import transaction

from accounts import audit
from accounts.audit import Actor
from accounts.models import SmtpUser
from relay.models import DsnMode, DsnSettings
from smtpplus.addresses import split_address


class InvalidDsnSettings(ValueError):
    """The choice cannot be saved: the message says why."""


def current(user: SmtpUser) -> DsnSettings:
    """The user's settings (unsaved defaults when it has none)."""
    return DsnSettings.objects.filter(smtp_user=user).first() or DsnSettings(smtp_user=user)


def change(user: SmtpUser, mode: str, address: str, actor: Actor) -> DsnSettings:
    if mode not in DsnMode.values:
        raise InvalidDsnSettings(f"{mode!r} is not one of {', '.join(DsnMode.values)}")
    address = address.strip()
    if mode == DsnMode.ADDRESS:
        if split_address(address) is None:
            raise InvalidDsnSettings(
                f"{address or '(empty)'} is not an email address: give the address that "
                "gets the delivery reports")
    else:
        address = ""
    with transaction.atomic():
        settings, _ = DsnSettings.objects.update_or_create(
            smtp_user=user, defaults={"mode": mode, "address": address})
        audit.record("smtp_user.dsn_settings", account=user.account, actor=actor, target=user,
                     details={"mode": mode, "address": address})
    return settings
