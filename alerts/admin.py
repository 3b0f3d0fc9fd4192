from django.contrib import admin

from alerts.models import Alert, AlertEvent, AlertRule, Notification

# A webhook URL may carry a password: the admin shows it masked, like the console.


@admin.register(AlertRule)
class AlertRuleAdmin(admin.ModelAdmin):
    list_display = ("name", "account", "enabled", "frequency", "created")
    list_filter = ("enabled", "frequency")
    search_fields = ("name", "account__name", "email_recipients")
    exclude = ("webhook_url", "webhook_secret_encrypted")
    readonly_fields = ("webhook_display",)
    raw_id_fields = ("account",)
    filter_horizontal = ("smtp_users",)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ("subject", "account", "rule_name", "event_count", "is_test", "created")
    list_filter = ("is_test",)
    search_fields = ("subject", "account__name", "rule_name")
    raw_id_fields = ("account", "rule")


@admin.register(AlertEvent)
class AlertEventAdmin(admin.ModelAdmin):
    list_display = ("source_key", "kind", "rule", "occurred_at", "alert")
    list_filter = ("kind",)
    search_fields = ("source_key",)
    raw_id_fields = ("account", "rule", "alert")


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("created", "account", "channel", "target_display", "status", "attempts", "error")
    list_filter = ("status", "channel")
    search_fields = ("target", "error")  # finds email targets; the match is not shown raw
    exclude = ("target",)
    readonly_fields = ("target_display",)
    raw_id_fields = ("alert", "account")
