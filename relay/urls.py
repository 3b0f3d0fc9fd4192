"""Messages log, message detail, relay events, suppression list, troubleshooter and test
message."""

from django.urls import path

from relay.console import dsn_settings, events, messages, suppressions, user_stats
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
    path("suppressions/", suppressions.suppression_list, name="suppressions"),
    path("suppressions/add/", suppressions.suppression_add, name="suppressions_add"),
    path("suppressions/remove/", suppressions.suppression_remove, name="suppressions_remove"),
    path("suppressions/import/", suppressions.suppression_import, name="suppressions_import"),
    path("suppressions/export.csv", suppressions.suppression_export, name="suppressions_export"),
    path("users/<int:pk>/delivery-reports/", dsn_settings.dsn_settings_page, name="dsn_settings"),
    path("users/<int:pk>/delivery-reports/save/", dsn_settings.dsn_settings_save,
         name="dsn_settings_save"),
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
