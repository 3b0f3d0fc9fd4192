"""SMTP+ users, credentials, authorized senders, sending domains, API keys, members, invitations, account switching, audit log."""

from django.urls import path

from accounts.views import (
    api_keys,
    audit,
    confirmations,
    credentials,
    domains,
    members,
    senders,
    users,
)

app_name = "accounts"
urlpatterns = [
    path("users/", users.smtpuser_list, name="smtpuser_list"),
    path("users/new/", users.smtpuser_create, name="smtpuser_create"),
    path("users/<int:pk>/", users.smtpuser_detail, name="smtpuser_detail"),
    path("users/<int:pk>/edit/", users.smtpuser_edit, name="smtpuser_edit"),
    path("users/<int:pk>/active/", users.smtpuser_set_active, name="smtpuser_set_active"),
    path("users/<int:pk>/delete/", users.smtpuser_delete, name="smtpuser_delete"),
    path("users/<int:pk>/reveal/", credentials.smtpuser_reveal, name="smtpuser_reveal"),
    path(
        "users/<int:pk>/reset-password/",
        credentials.smtpuser_reset_password,
        name="smtpuser_reset_password",
    ),
    path("confirm-password/", credentials.confirm_password, name="confirm_password"),
    path("users/<int:pk>/senders/", senders.senders_add, name="smtpuser_senders_add"),
    path(
        "users/<int:pk>/senders/domains/<int:entry_pk>/remove/",
        senders.domain_remove,
        name="smtpuser_domain_remove",
    ),
    path(
        "users/<int:pk>/senders/domains/<int:entry_pk>/subdomains/",
        senders.domain_subdomains,
        name="smtpuser_domain_subdomains",
    ),
    path(
        "users/<int:pk>/senders/emails/<int:entry_pk>/remove/",
        senders.email_remove,
        name="smtpuser_email_remove",
    ),
    path(
        "users/<int:pk>/senders/emails/<int:entry_pk>/resend/",
        confirmations.email_resend,
        name="smtpuser_email_resend",
    ),
    path("users/<int:pk>/can-send-as/", senders.send_as, name="smtpuser_send_as"),
    path("confirm-address/<str:token>/", confirmations.address_confirm, name="address_confirm"),
    path("domains/", domains.domain_list, name="domain_list"),
    path("domains/add/", domains.domain_add, name="domain_add"),
    path("domains/<int:pk>/", domains.domain_detail, name="domain_detail"),
    path("domains/<int:pk>/check/", domains.domain_check, name="domain_check"),
    path("domains/<int:pk>/subdomains/", domains.domain_subdomains, name="domain_subdomains"),
    path("domains/<int:pk>/remove/", domains.domain_remove, name="domain_remove"),
    path("audit/", audit.audit_log, name="audit"),
    path("api-keys/", api_keys.api_keys, name="api_keys"),
    path("api-keys/new/", api_keys.api_key_create, name="api_key_create"),
    path("api-keys/<int:pk>/revoke/", api_keys.api_key_revoke, name="api_key_revoke"),
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
