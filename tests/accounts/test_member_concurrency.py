"""Two owners demoting or removing each other at the same moment (PostgreSQL row locks)."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from accounts.actions.members import MemberError, change_role, remove_member
from accounts.models import Membership, Role

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def at_once(*actions):
    """Run each action in its own thread and database connection, released together;
    returns what each raised (None when it succeeded)."""
    barrier = threading.Barrier(len(actions))
    outcomes: list[BaseException | None] = [None] * len(actions)

    def run(i, action):
        try:
            barrier.wait()
            action()
        except BaseException as exc:  # reported to the test, not lost in the thread
            outcomes[i] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(actions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes


@pytest.mark.parametrize("change", [
    lambda m: change_role(m, Role.ADMIN),
    lambda m: remove_member(m),
], ids=["demote", "remove"])
def test_two_owners_acting_on_each_other_at_once_leave_one_owner_and_no_deadlock(cast, change):
    assert connection.vendor == "postgresql"
    Membership.objects.filter(account=cast.acme, user=cast.bob).update(role=Role.OWNER)
    for _ in range(10):
        alice = Membership.objects.get(account=cast.acme, user=cast.alice)
        bob = Membership.objects.get(account=cast.acme, user=cast.bob)
        outcomes = at_once(lambda a=alice: change(a), lambda b=bob: change(b))
        # One wins; the other is told the account needs an owner — never a deadlock.
        assert sorted(type(o).__name__ for o in outcomes) == ["MemberError", "NoneType"], outcomes
        assert all(o is None or isinstance(o, MemberError) for o in outcomes)
        owners = Membership.objects.filter(account=cast.acme, role=Role.OWNER)
        assert owners.count() == 1
        # Back to two owners for the next round.
        for user in (cast.alice, cast.bob):
            Membership.objects.update_or_create(
                account=cast.acme, user=user, defaults={"role": Role.OWNER})
