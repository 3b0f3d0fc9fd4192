"""Membership changes: join, change role, remove. Each writes its audit row itself.

An account always keeps at least one owner: demoting or removing the last one is refused.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest

from accounts import audit
from accounts.models import Account, Membership, Role


class MemberError(Exception):
    """A membership change that is not allowed; the message is shown to the owner."""


LAST_OWNER_MESSAGE = (
    "An account needs at least one owner: make someone else an owner first."
)


def _lock_owners(account: Account) -> list[Membership]:
    # Locks the owner rows (PostgreSQL) so that two owners demoting each other at the same
    # time cannot leave the account without one; SQLite serialises writers anyway.
    return list(
        Membership.objects.select_for_update().filter(account=account, role=Role.OWNER)
    )


def _label(membership: Membership) -> str:
    return membership.user.get_username()


@transaction.atomic
def join(
    account: Account,
    user: User,
    role: str,
    request: HttpRequest | None = None,
) -> tuple[Membership, bool]:
    """Make `user` a member of `account` with `role` through an invitation. Returns
    (membership, created).

    A user who is already a member keeps their current role.
    """
    membership, created = Membership.objects.get_or_create(
        account=account, user=user, defaults={"role": role}
    )
    if created:
        # The joining user is the actor, even when they were anonymous a moment ago.
        audit.record(
            "member.join", account=account, request=request, actor_label=user.get_username(),
            target=membership, target_label=user.get_username(),
            details={"role": role, "via": "invitation"},
        )
    return membership, created


@transaction.atomic
def change_role(membership: Membership, role: str, request: HttpRequest | None = None) -> bool:
    """Give a member another role. Returns False if the role did not change."""
    role = Role(role)
    membership = Membership.objects.select_for_update().select_related("user").get(
        pk=membership.pk
    )
    old = membership.role
    if old == role:
        return False
    if old == Role.OWNER:
        owners = _lock_owners(membership.account)
        if len(owners) <= 1:
            raise MemberError(LAST_OWNER_MESSAGE)
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record(
        "member.role", account=membership.account, request=request, target=membership,
        target_label=_label(membership), details={"from": old, "to": str(role)},
    )
    return True


@transaction.atomic
def remove_member(membership: Membership, request: HttpRequest | None = None) -> None:
    """Take a user out of an account (the console user itself is kept)."""
    membership = Membership.objects.select_for_update().select_related("user", "account").get(
        pk=membership.pk
    )
    if membership.role == Role.OWNER:
        owners = _lock_owners(membership.account)
        if len(owners) <= 1:
            raise MemberError(LAST_OWNER_MESSAGE)
    label = _label(membership)
    audit.record(
        "member.remove", account=membership.account, request=request, target=membership,
        target_label=label, details={"role": membership.role},
    )
    membership.delete()
