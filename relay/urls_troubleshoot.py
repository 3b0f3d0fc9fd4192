"""Troubleshooter and test message."""

from django.urls import path

from relay.troubleshooter import views

patterns = [
    path("users/<int:pk>/troubleshoot/", views.troubleshoot, name="troubleshoot"),
    path(
        "users/<int:pk>/troubleshoot/authorize/",
        views.troubleshoot_authorize,
        name="troubleshoot_authorize",
    ),
    path(
        "users/<int:pk>/troubleshoot/test-message/",
        views.test_message,
        name="test_message",
    ),
]
