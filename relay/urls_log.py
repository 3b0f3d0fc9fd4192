"""Messages log, message detail, relay events."""

from django.urls import path

from smtpplus.views import placeholder

patterns = [
    path("messages/", placeholder, name="messages"),
    path("events/", placeholder, name="events"),
]
