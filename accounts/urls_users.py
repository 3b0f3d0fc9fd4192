"""SMTP+ users, credentials and authorized senders."""

from django.urls import path

from accounts import views_credentials, views_senders, views_users

patterns = [
    path("users/", views_users.smtpuser_list, name="smtpuser_list"),
    path("users/new/", views_users.smtpuser_create, name="smtpuser_create"),
    path("users/<int:pk>/", views_users.smtpuser_detail, name="smtpuser_detail"),
    path("users/<int:pk>/edit/", views_users.smtpuser_edit, name="smtpuser_edit"),
    path("users/<int:pk>/active/", views_users.smtpuser_set_active, name="smtpuser_set_active"),
    path("users/<int:pk>/delete/", views_users.smtpuser_delete, name="smtpuser_delete"),
    path("users/<int:pk>/reveal/", views_credentials.smtpuser_reveal, name="smtpuser_reveal"),
    path(
        "users/<int:pk>/reset-password/",
        views_credentials.smtpuser_reset_password,
        name="smtpuser_reset_password",
    ),
    path("confirm-password/", views_credentials.confirm_password, name="confirm_password"),
    path("users/<int:pk>/senders/", views_senders.senders_add, name="smtpuser_senders_add"),
    path(
        "users/<int:pk>/senders/domains/<int:entry_pk>/remove/",
        views_senders.domain_remove,
        name="smtpuser_domain_remove",
    ),
    path(
        "users/<int:pk>/senders/domains/<int:entry_pk>/subdomains/",
        views_senders.domain_subdomains,
        name="smtpuser_domain_subdomains",
    ),
    path(
        "users/<int:pk>/senders/emails/<int:entry_pk>/remove/",
        views_senders.email_remove,
        name="smtpuser_email_remove",
    ),
    path("users/<int:pk>/can-send-as/", views_senders.send_as, name="smtpuser_send_as"),
]
