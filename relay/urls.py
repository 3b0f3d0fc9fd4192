"""Messages log, message detail, relay events, troubleshooter and test message."""

from django.urls import path

from relay.console import events, messages, user_stats
from relay.troubleshooter import views as troubleshooter

app_name = "relay"
urlpatterns = [
    path("messages/", messages.message_list, name="messages"),
    path("messages/bulk/", messages.messages_bulk, name="messages_bulk"),
    path("messages/<int:pk>/", messages.message_detail, name="message_detail"),
    path("messages/<int:pk>/retry/", messages.message_action, {"action": "retry"},
         name="message_retry"),
    path("messages/<int:pk>/cancel/", messages.message_action, {"action": "cancel"},
         name="message_cancel"),
    path("events/", events.event_list, name="events"),
    path("users/<int:pk>/statistics/", user_stats.user_stats, name="user_stats"),
    path("users/<int:pk>/troubleshoot/", troubleshooter.troubleshoot, name="troubleshoot"),
    path(
        "users/<int:pk>/troubleshoot/authorize/",
        troubleshooter.troubleshoot_authorize,
        name="troubleshoot_authorize",
    ),
    path(
        "users/<int:pk>/troubleshoot/unblock/",
        troubleshooter.troubleshoot_unblock,
        name="troubleshoot_unblock",
    ),
    path(
        "users/<int:pk>/troubleshoot/test-message/",
        troubleshooter.test_message,
        name="test_message",
    ),
]
