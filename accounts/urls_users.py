"""SMTP+ users, credentials and authorized senders."""

from django.urls import path

from smtpplus.views import placeholder

patterns = [
    path("users/", placeholder, name="smtpuser_list"),
    path("users/<int:pk>/", placeholder, name="smtpuser_detail"),
]
