"""Messages log, message detail, relay events."""

from django.urls import path

from relay import views_events, views_log

patterns = [
    path("messages/", views_log.message_list, name="messages"),
    path("messages/bulk/", views_log.messages_bulk, name="messages_bulk"),
    path("messages/<int:pk>/", views_log.message_detail, name="message_detail"),
    path("messages/<int:pk>/retry/", views_log.message_action, {"action": "retry"},
         name="message_retry"),
    path("messages/<int:pk>/cancel/", views_log.message_action, {"action": "cancel"},
         name="message_cancel"),
    path("events/", views_events.event_list, name="events"),
]
