"""Members page, invitation links, account switcher."""

from __future__ import annotations

import re

from django.contrib.auth.models import User
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.actions import invitations
from accounts.models import AuditEvent, Invitation, Membership, Role
from tests.conftest import login

MEMBERS = reverse("accounts:members")
INVITE = reverse("accounts:member_invite")


def membership(account, user) -> Membership:
    return Membership.objects.get(account=account, user=user)


def invite_link(client: Client) -> str:
    """The one-time link shown on the members page right after inviting."""
    page = client.get(MEMBERS).content.decode()
    match = re.search(r'id="invite-link" readonly value="[^"]*(/invite/[^"/]+/)"', page)
    assert match, "the members page shows no invitation link"
    return match.group(1)


# --- the list ---------------------------------------------------------------------------


def test_every_member_sees_the_members_with_their_roles(client, cast):
    login(client, cast.victor)
    page = client.get(MEMBERS).content.decode()
    for name in ("alice@acme.test", "bob@acme.test", "victor@acme.test"):
        assert name in page
    assert "charlie@globex.test" not in page
    assert "Owner" in page and "Viewer" in page


def test_only_owners_get_the_invite_and_change_forms(client, cast):
    login(client, cast.bob)
    page = client.get(MEMBERS).content.decode()
    assert 'id="invite-form"' not in page and "Change role" not in page
    assert "Only owners can invite" in page
    login(client, cast.alice)
    page = client.get(MEMBERS).content.decode()
    assert 'id="invite-form"' in page and "Change role" in page


def test_admins_and_viewers_cannot_invite_change_or_remove(client, cast):
    alice = membership(cast.acme, cast.alice)
    for user in (cast.bob, cast.victor):
        login(client, user)
        assert client.post(INVITE, {"email": "x@example.test", "role": "owner"}).status_code == 403
        url = reverse("accounts:member_role", args=[alice.pk])
        assert client.post(url, {"role": "viewer"}).status_code == 403
        assert client.post(reverse("accounts:member_remove", args=[alice.pk])).status_code == 403
    assert not Invitation.objects.exists()
    alice.refresh_from_db()
    assert alice.role == Role.OWNER


# --- inviting ---------------------------------------------------------------------------


def test_an_owner_invites_by_email_and_sees_the_link_once(alice_client, cast):
    response = alice_client.post(INVITE, {"email": "Dana@Example.test", "role": "viewer"})
    assert response.status_code == 302
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role, invitation.account) == (
        "dana@example.test", "viewer", cast.acme,
    )
    link = invite_link(alice_client)
    assert invitations.lookup(link.split("/")[2])[0] is invitations.State.VALID
    (sent,) = mail.outbox
    assert link in sent.body and sent.to == ["dana@example.test"]
    again = alice_client.get(MEMBERS).content.decode()
    assert link not in again
    assert "dana@example.test" in again  # still listed as pending
    assert AuditEvent.objects.filter(action="member.invite", actor=cast.alice).count() == 1


def test_inviting_a_member_again_is_refused(alice_client, cast):
    response = alice_client.post(INVITE, {"email": "BOB@acme.test", "role": "admin"})
    assert response.status_code == 400
    assert "bob@acme.test is already a member of Acme" in response.content.decode()
    assert not Invitation.objects.exists()


def test_an_invalid_email_or_role_is_refused(alice_client, cast):
    assert alice_client.post(INVITE, {"email": "not an email", "role": "admin"}).status_code == 400
    assert alice_client.post(INVITE, {"email": "d@example.test", "role": "god"}).status_code == 400
    assert not Invitation.objects.exists()


def test_the_invite_page_needs_post(alice_client, cast):
    assert alice_client.get(INVITE).status_code == 405


def test_an_owner_cancels_a_pending_invitation(alice_client, cast):
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN)
    url = reverse("accounts:invitation_cancel", args=[result.invitation.pk])
    assert alice_client.post(url).status_code == 302
    assert invitations.lookup(result.token)[0] is invitations.State.UNKNOWN
    assert AuditEvent.objects.filter(action="member.invite_cancel").exists()


# --- accepting --------------------------------------------------------------------------


def test_a_newcomer_sets_a_password_and_lands_on_the_account_dashboard(client, cast):
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN)
    path = reverse("accounts:invite_accept", args=[result.token])
    page = client.get(path)
    assert page.status_code == 200 and page["Cache-Control"].startswith("max-age=0")
    assert "Set password and join" in page.content.decode()
    response = client.post(path, {"password1": "plum tree 42 lantern", "password2": "plum tree 42 lantern"})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    dana = User.objects.get(username="dana@example.test")
    assert membership(cast.acme, dana).role == Role.ADMIN
    dashboard = client.get(reverse("dashboard"))
    assert dashboard.wsgi_request.user == dana
    assert dashboard.wsgi_request.account == cast.acme
    assert client.login(username="dana@example.test", password="plum tree 42 lantern")


def test_a_weak_or_mismatched_password_is_refused(client, cast):
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN)
    path = reverse("accounts:invite_accept", args=[result.token])
    weak = client.post(path, {"password1": "12345678", "password2": "12345678"}).content.decode()
    assert "too common" in weak or "entirely numeric" in weak
    differ = client.post(path, {"password1": "plum tree 42 lantern", "password2": "plum tree 42"})
    assert "The two passwords differ." in differ.content.decode()
    assert not User.objects.filter(username="dana@example.test").exists()
    assert invitations.lookup(result.token)[0] is invitations.State.VALID


def test_a_used_link_says_it_was_already_used(client, cast):
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN)
    path = reverse("accounts:invite_accept", args=[result.token])
    client.post(path, {"password1": "plum tree 42 lantern", "password2": "plum tree 42 lantern"})
    client.logout()
    second = client.get(path)
    assert second.status_code == 410
    assert "This invitation was already used" in second.content.decode()
    login(client, cast.charlie)
    assert client.post(path).status_code == 410
    assert not Membership.objects.filter(account=cast.acme, user=cast.charlie).exists()


def test_an_expired_or_unknown_link_says_so(client, cast):
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN)
    Invitation.objects.update(expires=timezone.now())
    expired = client.get(reverse("accounts:invite_accept", args=[result.token]))
    assert expired.status_code == 410 and "has expired" in expired.content.decode()
    unknown = client.get(reverse("accounts:invite_accept", args=["nope"]))
    assert unknown.status_code == 404 and "not valid" in unknown.content.decode()


def test_an_existing_user_is_asked_to_log_in_first(client, cast):
    result = invitations.invite(cast.acme, "charlie@globex.test", Role.VIEWER)
    path = reverse("accounts:invite_accept", args=[result.token])
    page = client.get(path).content.decode()
    assert "already exists. Log in first" in page
    assert f'href="/login/?next={path.replace("/", "%2F")}"' in page
    # A password post cannot take over the existing login.
    client.post(path, {"password1": "plum tree 42 lantern", "password2": "plum tree 42 lantern"})
    assert not client.login(username="charlie@globex.test", password="plum tree 42 lantern")
    assert invitations.lookup(result.token)[0] is invitations.State.VALID


def test_a_logged_in_user_joins_with_one_click_and_is_switched_to_the_account(client, cast):
    result = invitations.invite(cast.acme, "charlie@globex.test", Role.VIEWER)
    path = reverse("accounts:invite_accept", args=[result.token])
    login(client, cast.charlie)
    assert "Join Acme" in client.get(path).content.decode()
    assert not Membership.objects.filter(account=cast.acme, user=cast.charlie).exists()
    response = client.post(path)
    assert response.status_code == 302
    assert membership(cast.acme, cast.charlie).role == Role.VIEWER
    assert client.get(reverse("dashboard")).wsgi_request.account == cast.acme
    event = AuditEvent.objects.get(action="member.join")
    assert event.actor == cast.charlie and event.details == {"role": "viewer", "via": "invitation"}


def test_another_logged_in_user_is_refused_and_offered_to_log_out_and_accept(client, cast):
    result = invitations.invite(cast.acme, "dana@example.test", Role.ADMIN)
    path = reverse("accounts:invite_accept", args=[result.token])
    login(client, cast.charlie)
    page = client.get(path)
    assert page.status_code == 403
    html = page.content.decode()
    assert "You are logged in as <b>charlie@globex.test</b>" in html
    assert "Log out and accept as dana@example.test" in html
    assert "Join Acme</button>" not in html
    refused = client.post(path)
    assert refused.status_code == 403
    assert not Membership.objects.filter(account=cast.acme, user=cast.charlie).exists()
    assert invitations.lookup(result.token)[0] is invitations.State.VALID
    # The button logs charlie out and comes back to the link, now for dana to use.
    out = client.post(reverse("logout"), {"next": path})
    assert out.status_code == 302 and out["Location"] == path
    again = client.get(path)
    assert again.status_code == 200 and "Set password and join" in again.content.decode()


def test_an_existing_invitee_who_logs_in_as_someone_else_is_still_refused(client, cast):
    result = invitations.invite(cast.acme, "charlie@globex.test", Role.VIEWER)
    path = reverse("accounts:invite_accept", args=[result.token])
    login(client, cast.victor)
    assert client.post(path).status_code == 403
    assert not Membership.objects.filter(account=cast.acme, user=cast.charlie).exists()
    assert Membership.objects.get(account=cast.acme, user=cast.victor).role == Role.VIEWER
    assert invitations.lookup(result.token)[0] is invitations.State.VALID


# --- changing roles, removing -----------------------------------------------------------


def test_an_owner_changes_a_role(alice_client, cast):
    bob = membership(cast.acme, cast.bob)
    alice_client.post(reverse("accounts:member_role", args=[bob.pk]), {"role": "viewer"})
    bob.refresh_from_db()
    assert bob.role == Role.VIEWER
    assert AuditEvent.objects.get(action="member.role").details == {"from": "admin", "to": "viewer"}


def test_the_last_owner_cannot_demote_or_remove_themselves(alice_client, cast):
    alice = membership(cast.acme, cast.alice)
    response = alice_client.post(
        reverse("accounts:member_role", args=[alice.pk]), {"role": "admin"}, follow=True
    )
    assert "at least one owner" in response.content.decode()
    response = alice_client.post(reverse("accounts:member_remove", args=[alice.pk]), follow=True)
    assert "at least one owner" in response.content.decode()
    alice.refresh_from_db()
    assert alice.role == Role.OWNER


def test_removing_asks_for_confirmation_first(alice_client, cast):
    victor = membership(cast.acme, cast.victor)
    url = reverse("accounts:member_remove", args=[victor.pk])
    page = alice_client.get(url)
    assert page.status_code == 200 and "Remove victor@acme.test?" in page.content.decode()
    assert Membership.objects.filter(pk=victor.pk).exists()
    assert alice_client.post(url).status_code == 302
    assert not Membership.objects.filter(pk=victor.pk).exists()
    assert AuditEvent.objects.filter(action="member.remove", actor=cast.alice).count() == 1


def test_members_of_another_account_are_not_found(alice_client, cast):
    charlie = membership(cast.globex, cast.charlie)
    assert alice_client.get(reverse("accounts:member_remove", args=[charlie.pk])).status_code == 404
    assert alice_client.post(reverse("accounts:member_remove", args=[charlie.pk])).status_code == 404
    role = reverse("accounts:member_role", args=[charlie.pk])
    assert alice_client.post(role, {"role": "viewer"}).status_code == 404
    theirs = invitations.invite(cast.globex, "eve@example.test", Role.ADMIN)
    cancel = reverse("accounts:invitation_cancel", args=[theirs.invitation.pk])
    assert alice_client.post(cancel).status_code == 404
    assert membership(cast.globex, cast.charlie).role == Role.OWNER


# --- switching accounts -----------------------------------------------------------------


def test_a_member_of_two_accounts_switches_between_them(client, cast):
    Membership.objects.create(account=cast.globex, user=cast.bob, role=Role.VIEWER)
    login(client, cast.bob)
    assert client.get(reverse("dashboard")).wsgi_request.account == cast.acme
    response = client.post(reverse("accounts:switch"), {"account": cast.globex.slug})
    assert response.status_code == 302 and response["Location"] == reverse("dashboard")
    page = client.get(reverse("dashboard"))
    assert page.wsgi_request.account == cast.globex
    assert page.wsgi_request.membership.role == Role.VIEWER


def test_a_page_reads_the_users_memberships_once_for_the_account_and_the_switcher(
    client, cast
):
    Membership.objects.create(account=cast.globex, user=cast.bob, role=Role.VIEWER)
    login(client, cast.bob)
    client.post(reverse("accounts:switch"), {"account": cast.globex.slug})
    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("accounts:smtpuser_list"))
    html = page.content.decode()
    assert page.wsgi_request.account == cast.globex
    # Both accounts in the switcher, by name, the current one selected.
    assert re.search(r'<option value="acme">Acme</option><option value="globex" selected>Globex', html)
    reads = [q["sql"] for q in queries.captured_queries if 'FROM "accounts_membership"' in q["sql"]]
    assert len(reads) == 1, reads


def test_switching_to_an_account_one_is_not_a_member_of_is_not_found(alice_client, cast):
    response = alice_client.post(reverse("accounts:switch"), {"account": cast.globex.slug})
    assert response.status_code == 404
    assert alice_client.get(reverse("dashboard")).wsgi_request.account == cast.acme
    assert alice_client.get(reverse("accounts:switch")).status_code == 405
