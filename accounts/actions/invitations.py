"""Invitations: a one-time link that makes its holder a member of an account.

Only a SHA-256 digest of the token is stored, so a database dump yields no usable link.
Accepting is a single conditional UPDATE, so a link can be used once even when two
browsers race on it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts import audit
from accounts.actions.members import join
from accounts.audit import Actor
from accounts.models import Account, Invitation, Membership, Role

log = logging.getLogger(__name__)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def invite_url(token: str) -> str:
    """The absolute link sent to the invitee (SMTPPLUS_CONSOLE_URL + path)."""
    base = settings.SMTPPLUS_CONSOLE_URL.rstrip("/")
    return base + reverse("accounts:invite_accept", args=[token])


@dataclass(frozen=True)
class InviteResult:
    invitation: Invitation
    token: str
    link: str
    # Empty when the email went out; otherwise why not (the owner can still copy the link).
    email_error: str = ""


def invite(
    account: Account,
    email: str,
    role: str,
    actor: Actor | None = None,
    invited_by: User | None = None,
) -> InviteResult:
    """Create an invitation, record it, and email the link to `email`.

    A pending invitation to the same address for the same account is replaced, so only
    the newest link works.
    """
    email = email.strip().lower()
    role = Role(role).value  # ValueError for anything but owner/admin/viewer
    token = secrets.token_urlsafe(32)
    if invited_by is None and actor is not None:
        invited_by = actor.user
    with transaction.atomic():
        Invitation.objects.filter(account=account, email=email, accepted__isnull=True).delete()
        invitation = Invitation.objects.create(
            account=account,
            email=email,
            role=role,
            token_digest=token_digest(token),
            invited_by=invited_by,
            expires=timezone.now() + timedelta(days=settings.SMTPPLUS_INVITE_DAYS),
        )
        audit.record(
            "member.invite", account=account, actor=actor, target=invitation,
            target_label=email, details={"role": role},
        )
    link = invite_url(token)
    email_error = ""
    try:
        send_invitation_email(invitation, link)
    except Exception as exc:  # any mail failure: the owner can still copy the link
        log.warning("invitation email to %s failed: %s", email, exc)
        email_error = f"{type(exc).__name__}: {exc}"
    return InviteResult(invitation, token, link, email_error)


def send_invitation_email(invitation: Invitation, link: str) -> None:
    context = {
        "invitation": invitation,
        "account": invitation.account,
        "link": link,
        "inviter": invitation.invited_by.get_username() if invitation.invited_by else "",
        "days": settings.SMTPPLUS_INVITE_DAYS,
    }
    subject = " ".join(render_to_string("emails/invitation_subject.txt", context).split())
    body = render_to_string("emails/invitation_body.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [invitation.email])


class State(Enum):
    VALID = "valid"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"


def _state(invitation: Invitation | None) -> State:
    if invitation is None:
        return State.UNKNOWN
    if invitation.accepted is not None:
        return State.USED
    if invitation.expires <= timezone.now():
        return State.EXPIRED
    return State.VALID


def lookup(token: str) -> tuple[State, Invitation | None]:
    invitation = (
        Invitation.objects.select_related("account", "invited_by")
        .filter(token_digest=token_digest(token))
        .first()
    )
    return _state(invitation), invitation


class InvitationUnusable(Exception):
    def __init__(self, state: State) -> None:
        super().__init__(state.value)
        self.state = state


class InvitationForSomeoneElse(Exception):
    """The invitation names another address than the console user trying to use it."""

    def __init__(self, invitation: Invitation, user: User) -> None:
        super().__init__(f"invitation for {invitation.email}, not {user.get_username()}")
        self.invitation = invitation
        self.user = user


def is_for(invitation: Invitation, user: User) -> bool:
    """Whether `user` is the person the invitation was sent to: their login or their
    email is the invited address. A link forwarded, leaked or opened in someone else's
    browser must not make that someone a member."""
    invited = invitation.email.lower()
    return user.get_username().lower() == invited or (user.email or "").lower() == invited


def existing_user(email: str) -> User | None:
    UserModel = get_user_model()
    return (
        UserModel.objects.filter(username__iexact=email).first()
        or UserModel.objects.filter(email__iexact=email).order_by("pk").first()
    )


@transaction.atomic
def accept(
    invitation: Invitation,
    user: User,
    actor: Actor | None = None,
) -> tuple[Membership, bool]:
    """Use the invitation for `user`. Returns (membership, created).

    Raises InvitationForSomeoneElse (and leaves it usable) unless it was sent to `user`,
    and InvitationUnusable if it was used in the meantime or has expired.
    """
    if not is_for(invitation, user):
        raise InvitationForSomeoneElse(invitation, user)
    now = timezone.now()
    claimed = Invitation.objects.filter(
        pk=invitation.pk, accepted__isnull=True, expires__gt=now
    ).update(accepted=now)
    if not claimed:
        raise InvitationUnusable(_state(Invitation.objects.filter(pk=invitation.pk).first()))
    return join(invitation.account, user, invitation.role, actor=actor)


@transaction.atomic
def accept_as_new_user(
    invitation: Invitation, password: str, actor: Actor | None = None
) -> tuple[User, Membership]:
    """Create the console user (username = the invited email) and use the invitation."""
    UserModel = get_user_model()
    user = UserModel.objects.create_user(
        username=invitation.email, email=invitation.email, password=password
    )
    membership, _ = accept(invitation, user, actor=actor)
    return user, membership


@transaction.atomic
def cancel(invitation: Invitation, actor: Actor | None = None) -> None:
    audit.record(
        "member.invite_cancel", account=invitation.account, actor=actor,
        target=invitation, target_label=invitation.email, details={"role": invitation.role},
    )
    invitation.delete()
