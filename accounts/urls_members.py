"""Members, invitations, account switching, audit log."""

from django.urls import path

from smtpplus.views import placeholder

patterns = [
    path("audit/", placeholder, name="audit"),
    path("members/", placeholder, name="members"),
    path("switch-account/", placeholder, name="switch"),
]
