"""Django's admin, for operators (superusers) only. Console users never see it.

SMTP+ passwords (encrypted value and login digest) are never shown or editable here:
passwords are generated and revealed through the console, which audits every reveal.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from accounts.models import (
    Account,
    AuditEvent,
    AuthorizedDomain,
    AuthorizedEmail,
    Invitation,
    Membership,
    SmtpUser,
)
from smtpplus.admin import ReadOnly


def superuser_only(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_superuser)


# Staff flags are not a role in SMTP+: only superusers may use the admin at all.
admin.site.has_permission = superuser_only  # type: ignore[method-assign]
admin.site.site_header = "SMTP+ operators"


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    raw_id_fields = ["user"]


@admin.register(Account)
class AccountAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "created"]
    search_fields = ["name", "slug"]
    inlines = [MembershipInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "account", "role", "created"]
    list_filter = ["role"]
    search_fields = ["user__username", "account__name"]
    raw_id_fields = ["user", "account"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "account", "role", "created", "expires", "accepted"]
    search_fields = ["email", "account__name"]
    exclude = ["token_digest"]
    readonly_fields = ["invited_by", "created", "accepted"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # The link is shown only to whoever creates it: invitations come from the console.
        return False


class AuthorizedDomainInline(ReadOnly, admin.TabularInline):
    model = AuthorizedDomain
    extra = 0


class AuthorizedEmailInline(ReadOnly, admin.TabularInline):
    model = AuthorizedEmail
    extra = 0


SMTP_USER_SECRETS = ["password_encrypted", "password_digest"]


@admin.register(SmtpUser)
class SmtpUserAdmin(ReadOnly, admin.ModelAdmin):
    """Users and their senders are changed in the console or with `manage.py smtpuser`."""

    list_display = ["username", "name", "account", "active", "priority", "last_login_at"]
    list_filter = ["active"]
    search_fields = ["username", "name", "account__name"]
    exclude = SMTP_USER_SECRETS
    raw_id_fields = ["account"]
    inlines = [AuthorizedDomainInline, AuthorizedEmailInline]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnly, admin.ModelAdmin):
    """The audit log is evidence: read-only, even for operators."""

    list_display = ["created", "account", "actor_label", "action", "target_label", "ip"]
    list_filter = ["action"]
    search_fields = ["actor_label", "target_label", "action"]
    date_hierarchy = "created"
