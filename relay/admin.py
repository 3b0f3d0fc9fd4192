"""Django's admin for the relay's tables: read-only views for operators (superusers).

Queue changes (retry, cancel) go through the console, which audits them; raw message
bytes are not shown here.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from relay.models import Attempt, ConnectionStat, Message, Recipient, RelayEvent, RelayNode
from smtpplus.admin import ReadOnly


class ReadOnlyAdmin(ReadOnly, admin.ModelAdmin):
    pass


class ReadOnlyInline(ReadOnly, admin.TabularInline):
    extra = 0


class RecipientInline(ReadOnlyInline):
    model = Recipient
    exclude = ["lease_owner", "lease_until"]


class AttemptInline(ReadOnlyInline):
    model = Attempt


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin):
    list_display = ["queue_id", "account", "smtp_user", "envelope_from", "subject", "size", "created"]
    search_fields = ["queue_id", "envelope_from", "header_from", "subject", "message_id"]
    date_hierarchy = "created"
    list_select_related = ["account", "smtp_user"]
    exclude = ["raw"]
    inlines = [RecipientInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Message]:
        return super().get_queryset(request).defer("raw")


@admin.register(Recipient)
class RecipientAdmin(ReadOnlyAdmin):
    list_display = ["address", "status", "account", "attempts", "next_attempt_at", "last_code"]
    list_select_related = ["account"]
    list_filter = ["status"]
    search_fields = ["address", "message__queue_id"]
    inlines = [AttemptInline]


@admin.register(RelayEvent)
class RelayEventAdmin(ReadOnlyAdmin):
    list_display = ["last_seen", "kind", "account", "username", "client_ip", "port", "count"]
    list_select_related = ["account"]
    list_filter = ["kind"]
    search_fields = ["username", "client_ip", "address"]
    date_hierarchy = "last_seen"


@admin.register(RelayNode)
class RelayNodeAdmin(ReadOnlyAdmin):
    list_display = ["node_id", "hostname", "started", "heartbeat", "stopped"]


@admin.register(ConnectionStat)
class ConnectionStatAdmin(ReadOnlyAdmin):
    list_display = ["hour", "port", "smtp_user", "connections", "logins", "last_seen"]
    list_select_related = ["smtp_user"]
    list_filter = ["port"]
