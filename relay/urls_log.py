"""Messages log, message detail, relay events."""

from django.urls import path

from relay.console import events, messages

patterns = [
    path("messages/", messages.message_list, name="messages"),
    path("messages/bulk/", messages.messages_bulk, name="messages_bulk"),
    path("messages/<int:pk>/", messages.message_detail, name="message_detail"),
    path("messages/<int:pk>/retry/", messages.message_action, {"action": "retry"},
         name="message_retry"),
    path("messages/<int:pk>/cancel/", messages.message_action, {"action": "cancel"},
         name="message_cancel"),
    path("events/", events.event_list, name="events"),
]
