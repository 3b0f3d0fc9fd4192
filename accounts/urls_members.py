"""Members, invitations, account switching, audit log."""

from django.urls import path

from accounts import views_audit, views_members

patterns = [
    path("audit/", views_audit.audit_log, name="audit"),
    path("members/", views_members.members, name="members"),
    path("members/invite/", views_members.invite, name="member_invite"),
    path("members/<int:pk>/role/", views_members.member_role, name="member_role"),
    path("members/<int:pk>/remove/", views_members.member_remove, name="member_remove"),
    path(
        "members/invitations/<int:pk>/cancel/",
        views_members.invitation_cancel,
        name="invitation_cancel",
    ),
    path("invite/<str:token>/", views_members.invite_accept, name="invite_accept"),
    path("switch-account/", views_members.switch, name="switch"),
]
