"""Confirming an authorized address at a domain the account does not own (a Gmail
address, a partner's): a link mailed to the address; the address may be used as a
sender once the link has been followed.

Only a SHA-256 digest of the link's token is stored. The link works once and expires
after SMTPPLUS_ADDRESS_CONFIRM_HOURS; a resend makes a new link and the old one stops
working. Following the link shows a page with a Confirm button: only its POST confirms,
so a mail scanner that fetches every link in a message confirms nothing.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from enum import Enum

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts import audit
from accounts.audit import Actor
from accounts.models import AuthorizedEmail

log = logging.getLogger("accounts.confirmations")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def confirm_url(token: str) -> str:
    """The absolute link mailed to the address (SMTPPLUS_CONSOLE_URL + path)."""
    return settings.SMTPPLUS_CONSOLE_URL.rstrip("/") + reverse("accounts:address_confirm",
                                                               args=[token])


def send_confirmation(entry: AuthorizedEmail, actor: Actor | None = None) -> str:
    """Make a new link for the address, mail it, and audit it. Returns "" or why the
    email could not be sent (the entry keeps its new link: a resend tries again)."""
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    with transaction.atomic():
        AuthorizedEmail.objects.filter(pk=entry.pk).update(
            confirm_token_digest=token_digest(token), confirm_sent_at=now,
            confirm_expires=now + timedelta(hours=settings.SMTPPLUS_ADDRESS_CONFIRM_HOURS))
        smtp_user = entry.smtp_user
        audit.record("smtpuser.address_confirmation_sent", account=smtp_user.account,
                     actor=actor, target=smtp_user, target_label=smtp_user.username,
                     details={"email": entry.email})
    context = {
        "email": entry.display, "account": smtp_user.account, "link": confirm_url(token),
        "hours": settings.SMTPPLUS_ADDRESS_CONFIRM_HOURS,
    }
    try:
        subject = " ".join(render_to_string("emails/address_confirm_subject.txt", context).split())
        body = render_to_string("emails/address_confirm_body.txt", context)
        send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [entry.email])
    except Exception as exc:  # any mail failure: the admin can resend from the console
        log.warning("confirmation email to %s failed: %s", entry.email, exc)
        return f"{type(exc).__name__}: {exc}"
    return ""


def send_confirmations_on_commit(emails: list[str], smtp_user_id: int,
                                 actor: Actor | None = None) -> None:
    """Mail the links of these newly added addresses once the addition is committed."""
    def send() -> None:
        for entry in AuthorizedEmail.objects.select_related("smtp_user__account").filter(
                smtp_user_id=smtp_user_id, email__in=emails, confirmed_at__isnull=True):
            send_confirmation(entry, actor)

    transaction.on_commit(send)


class State(Enum):
    VALID = "valid"
    UNKNOWN = "unknown"  # no such link, or replaced by a newer one, or already used
    EXPIRED = "expired"


def lookup(token: str) -> tuple[State, AuthorizedEmail | None]:
    entry = (AuthorizedEmail.objects.select_related("smtp_user__account")
             .filter(confirm_token_digest=token_digest(token), confirmed_at__isnull=True)
             .first()) if token else None
    if entry is None:
        return State.UNKNOWN, None
    if entry.confirm_expires is None or entry.confirm_expires <= timezone.now():
        return State.EXPIRED, entry
    return State.VALID, entry


def confirm_address(token: str, actor: Actor) -> tuple[State, AuthorizedEmail | None]:
    """Confirm the address whose link this is, if the link is valid."""
    with transaction.atomic():
        state, entry = lookup(token)
        if state is not State.VALID or entry is None:
            return state, entry
        entry = AuthorizedEmail.objects.select_for_update().get(pk=entry.pk)
        if entry.confirmed_at is not None:
            return State.UNKNOWN, None
        entry.confirmed_at = timezone.now()
        entry.confirmed_how = "link"
        entry.confirm_token_digest = ""
        entry.save(update_fields=["confirmed_at", "confirmed_how", "confirm_token_digest"])
        smtp_user = entry.smtp_user
        smtp_user.mark_changed()
        audit.record("smtpuser.address_confirmed", account=smtp_user.account, actor=actor,
                     target=smtp_user, target_label=smtp_user.username,
                     details={"email": entry.email})
    return State.VALID, entry
