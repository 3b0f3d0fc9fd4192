"""Membership changes: join, change role, remove. Each writes its audit row itself.

An account always keeps at least one owner: demoting or removing the last one is refused.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q

from accounts import audit
from accounts.audit import Actor
from accounts.models import Account, Membership, Role


class MemberError(Exception):
    """A membership change that is not allowed; the message is shown to the owner."""


LAST_OWNER_MESSAGE = (
    "An account needs at least one owner: make someone else an owner first."
)


def _lock(membership: Membership) -> tuple[Membership, int]:
    """`membership` read afresh, and the number of owners of its account.

    Its row and every owner row are locked (PostgreSQL; SQLite serialises writers anyway)
    in ONE statement, in primary-key order: two owners demoting or removing each other at
    the same time then queue on the same first row instead of each holding the row the
    other waits for (a deadlock), and the second sees the first's change, so the account
    cannot be left without an owner.
    """
    rows = list(
        Membership.objects.select_for_update(of=("self",))
        .select_related("user", "account")
        .filter(Q(pk=membership.pk) | Q(account_id=membership.account_id, role=Role.OWNER))
        .order_by("pk")
    )
    for row in rows:
        if row.pk == membership.pk:
            return row, sum(1 for r in rows if r.role == Role.OWNER)
    raise Membership.DoesNotExist(f"membership {membership.pk} no longer exists")


def _label(membership: Membership) -> str:
    return membership.user.get_username()


@transaction.atomic
def join(
    account: Account,
    user: User,
    role: str,
    actor: Actor | None = None,
) -> tuple[Membership, bool]:
    """Make `user` a member of `account` with `role` through an invitation. Returns
    (membership, created).

    A user who is already a member keeps their current role.
    """
    membership, created = Membership.objects.get_or_create(
        account=account, user=user, defaults={"role": role}
    )
    if created:
        # The joining user is named as the actor, even when they were anonymous a moment ago.
        audit.record(
            "member.join", account=account,
            actor=(actor or Actor.command_line()).labelled(user.get_username()),
            target=membership, target_label=user.get_username(),
            details={"role": role, "via": "invitation"},
        )
    return membership, created


@transaction.atomic
def change_role(membership: Membership, role: str, actor: Actor | None = None) -> bool:
    """Give a member another role. Returns False if the role did not change."""
    role = Role(role)
    membership, owners = _lock(membership)
    old = membership.role
    if old == role:
        return False
    if old == Role.OWNER and owners <= 1:
        raise MemberError(LAST_OWNER_MESSAGE)
    membership.role = role
    membership.save(update_fields=["role"])
    audit.record(
        "member.role", account=membership.account, actor=actor, target=membership,
        target_label=_label(membership), details={"from": old, "to": str(role)},
    )
    return True


@transaction.atomic
def remove_member(membership: Membership, actor: Actor | None = None) -> None:
    """Take a user out of an account (the console user itself is kept)."""
    membership, owners = _lock(membership)
    if membership.role == Role.OWNER and owners <= 1:
        raise MemberError(LAST_OWNER_MESSAGE)
    label = _label(membership)
    audit.record(
        "member.remove", account=membership.account, actor=actor, target=membership,
        target_label=label, details={"role": membership.role},
    )
    membership.delete()
