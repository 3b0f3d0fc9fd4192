"""Members, invitations, account switching, audit log."""

from django.urls import path

from accounts.views import audit, members

patterns = [
    path("audit/", audit.audit_log, name="audit"),
    path("members/", members.members, name="members"),
    path("members/invite/", members.invite, name="member_invite"),
    path("members/<int:pk>/role/", members.member_role, name="member_role"),
    path("members/<int:pk>/remove/", members.member_remove, name="member_remove"),
    path(
        "members/invitations/<int:pk>/cancel/",
        members.invitation_cancel,
        name="invitation_cancel",
    ),
    path("invite/<str:token>/", members.invite_accept, name="invite_accept"),
    path("switch-account/", members.switch, name="switch"),
]
