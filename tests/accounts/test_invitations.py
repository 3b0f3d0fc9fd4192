"""Invitations and membership changes, called directly (no HTTP)."""

from __future__ import annotations

import hashlib
import socket
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone

from accounts.actions import invitations
from accounts.actions.invitations import InvitationForSomeoneElse, InvitationUnusable, State
from accounts.actions.members import MemberError, change_role, remove_member
from accounts.models import AuditEvent, Invitation, Membership, Role
from tests.conftest import PASSWORD


def test_it_stores_only_a_digest_of_the_token(cast):
    result = invitations.invite(cast.acme, "Dana@Example.TEST", Role.ADMIN, invited_by=cast.alice)
    stored = Invitation.objects.get()
    assert stored.email == "dana@example.test"
    assert stored.token_digest == hashlib.sha256(result.token.encode()).hexdigest()
    assert result.token not in stored.token_digest
    assert len(result.token) >= 40
    assert result.link.endswith(f"/invite/{result.token}/")


def test_only_the_three_roles_can_be_given(cast):
    with pytest.raises(ValueError):
        invitations.invite(cast.acme, "dana@example.test", "superuser")
    assert not Invitation.objects.exists()


def test_it_expires_after_the_configured_number_of_days(cast, settings):
    settings.SMTPPLUS_INVITE_DAYS = 3
    result = invitations.invite(cast.acme, "dana@example.test", Role.VIEWER)
    remaining = result.invitation.expires - timezone.now()
    assert timedelta(days=3) - timedelta(minutes=1) < remaining <= timedelta(days=3)


def test_it_emails_the_link_to_the_invitee(cast, settings):
    settings.SMTPPLUS_CONSOLE_URL = "https://console.example.test/"
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN, invited_by=cast.alice)
    assert result.email_error == ""
    (sent,) = mail.outbox
    assert sent.to == ["dana@example.test"]
    assert "Acme" in sent.subject
    assert f"https://console.example.test/invite/{result.token}/" in sent.body
    assert "alice@acme.test invited you" in sent.body


def test_an_unreachable_mail_server_still_gives_the_owner_the_link(cast, settings):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", closed_port, 2
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN)
    assert "ConnectionRefusedError" in result.email_error
    assert invitations.lookup(result.token) == (State.VALID, result.invitation)


def test_inviting_the_same_address_again_replaces_the_pending_link(cast):
    first = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN)
    second = invitations.invite(cast.acme, "dana@example.test", Role.VIEWER)
    assert invitations.lookup(first.token)[0] is State.UNKNOWN
    assert invitations.lookup(second.token)[0] is State.VALID
    assert Invitation.objects.count() == 1


def test_the_invitation_is_audited_without_the_token(cast):
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN, invited_by=cast.alice)
    event = AuditEvent.objects.get(action="member.invite")
    assert event.account == cast.acme
    assert event.target_label == "dana@example.test"
    assert event.details == {"role": "admin"}
    assert result.token not in str(event.details) + event.target_label


def test_an_invitation_can_be_used_only_once(cast):
    result = invitations.invite(cast.acme, "dana@example.test", Role.VIEWER)
    dana = User.objects.create_user("dana@example.test", "dana@example.test", PASSWORD)
    membership, created = invitations.accept(result.invitation, dana)
    assert created and membership.role == Role.VIEWER and membership.account == cast.acme
    assert invitations.lookup(result.token)[0] is State.USED
    with pytest.raises(InvitationUnusable) as exc:
        invitations.accept(result.invitation, dana)
    assert exc.value.state is State.USED


def test_it_refuses_a_console_user_the_invitation_was_not_sent_to(cast):
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN)
    with pytest.raises(InvitationForSomeoneElse):
        invitations.accept(result.invitation, cast.charlie)
    assert not Membership.objects.filter(account=cast.acme, user=cast.charlie).exists()
    # Still usable by the person it was sent to.
    assert invitations.lookup(result.token)[0] is State.VALID
    assert not AuditEvent.objects.filter(action="member.join").exists()


def test_the_invited_address_may_be_the_users_login_or_email_in_any_case(cast):
    by_login = invitations.invite(cast.acme, "Charlie@Globex.TEST", Role.VIEWER)
    assert invitations.is_for(by_login.invitation, cast.charlie)
    erin = User.objects.create_user("erin", "Erin@Example.TEST", PASSWORD)
    by_email = invitations.invite(cast.acme, "erin@example.test", Role.VIEWER)
    assert invitations.is_for(by_email.invitation, erin)
    assert not invitations.is_for(by_email.invitation, cast.charlie)
    membership, created = invitations.accept(by_email.invitation, erin)
    assert created and membership.user == erin


def test_an_expired_invitation_cannot_be_used(cast):
    result = invitations.invite(cast.acme, "charlie@globex.test", Role.ADMIN)
    Invitation.objects.filter(pk=result.invitation.pk).update(expires=timezone.now())
    assert invitations.lookup(result.token)[0] is State.EXPIRED
    with pytest.raises(InvitationUnusable) as exc:
        invitations.accept(result.invitation, cast.charlie)
    assert exc.value.state is State.EXPIRED


def test_an_unknown_token_is_unknown(cast):
    assert invitations.lookup("not-a-token") == (State.UNKNOWN, None)


def test_a_new_user_gets_a_console_login_named_after_the_email(cast):
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN)
    user, membership = invitations.accept_as_new_user(result.invitation, "a long new passphrase")
    assert user.username == user.email == "dana@example.test"
    assert user.check_password("a long new passphrase")
    assert membership.role == Role.ADMIN
    join = AuditEvent.objects.get(action="member.join")
    assert join.actor_label == "dana@example.test" and join.account == cast.acme


def test_a_used_invitation_creates_no_user(cast):
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN)
    Invitation.objects.filter(pk=result.invitation.pk).update(accepted=timezone.now())
    with pytest.raises(InvitationUnusable):
        invitations.accept_as_new_user(result.invitation, "a long new passphrase")
    assert not User.objects.filter(username="dana@example.test").exists()


def test_joining_an_account_one_already_belongs_to_keeps_the_role(cast):
    result = invitations.invite(cast.acme, "bob@acme.test", Role.VIEWER)
    membership, created = invitations.accept(result.invitation, cast.bob)
    assert not created and membership.role == Role.ADMIN


def test_the_last_owner_cannot_be_demoted_or_removed(cast):
    owner = Membership.objects.get(account=cast.acme, user=cast.alice)
    with pytest.raises(MemberError, match="at least one owner"):
        change_role(owner, Role.ADMIN)
    with pytest.raises(MemberError, match="at least one owner"):
        remove_member(owner)
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_an_owner_can_step_down_once_there_is_another_owner(cast):
    bob = Membership.objects.get(account=cast.acme, user=cast.bob)
    assert change_role(bob, Role.OWNER)
    alice = Membership.objects.get(account=cast.acme, user=cast.alice)
    assert change_role(alice, Role.VIEWER)
    events = AuditEvent.objects.filter(action="member.role").order_by("id")
    assert [e.details for e in events] == [
        {"from": "admin", "to": "owner"},
        {"from": "owner", "to": "viewer"},
    ]
    assert [e.target_label for e in events] == ["bob@acme.test", "alice@acme.test"]


def test_removing_a_member_keeps_the_console_user_and_is_audited(cast):
    victor = Membership.objects.get(account=cast.acme, user=cast.victor)
    remove_member(victor)
    assert not Membership.objects.filter(pk=victor.pk).exists()
    assert User.objects.filter(pk=cast.victor.pk).exists()
    event = AuditEvent.objects.get(action="member.remove")
    assert event.target_label == "victor@acme.test" and event.details == {"role": "viewer"}


def test_an_unchanged_role_writes_no_audit_row(cast):
    bob = Membership.objects.get(account=cast.acme, user=cast.bob)
    assert change_role(bob, Role.ADMIN) is False
    assert not AuditEvent.objects.filter(action="member.role").exists()
