"""Troubleshooter and test message."""

from django.urls import path

from relay import views_troubleshoot

patterns = [
    path("users/<int:pk>/troubleshoot/", views_troubleshoot.troubleshoot, name="troubleshoot"),
    path(
        "users/<int:pk>/troubleshoot/authorize/",
        views_troubleshoot.troubleshoot_authorize,
        name="troubleshoot_authorize",
    ),
    path(
        "users/<int:pk>/troubleshoot/test-message/",
        views_troubleshoot.test_message,
        name="test_message",
    ),
]
