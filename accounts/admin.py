"""Django's admin, for operators (superusers) only. Console users never see it.

SMTP+ passwords (encrypted value and login digest) are never shown or editable here:
passwords are generated and revealed through the console, which audits every reveal.
Nor is a DKIM private key, not even encrypted. Sending domains, their DKIM keys and their
events are read-only: they change through the console, the API or `manage.py domain`,
which check DNS and write the audit row.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from accounts.models import (
    Account,
    AuditEvent,
    AuthorizedDomain,
    AuthorizedEmail,
    DkimKey,
    DomainEvent,
    Invitation,
    Membership,
    SendingDomain,
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


# Every field of a DKIM key but its private part (the encrypted blob included): shown,
# never editable.
DKIM_KEY_SECRETS = ["private_key_encrypted"]
DKIM_KEY_FIELDS = [
    "sending_domain", "selector", "algorithm", "state", "public_key", "dns_status", "created",
    "activated_at", "retiring_since", "retired_at", "last_checked_at",
]


class DkimKeyInline(ReadOnly, admin.TabularInline):
    model = DkimKey
    extra = 0
    fields = ["selector", "algorithm", "state", "dns_status", "activated_at", "retired_at"]
    exclude = DKIM_KEY_SECRETS


class DomainEventInline(ReadOnly, admin.TabularInline):
    model = DomainEvent
    extra = 0
    fields = ["created", "kind", "details"]
    exclude = ["account", "domain"]
    ordering = ["-created"]


@admin.register(SendingDomain)
class SendingDomainAdmin(ReadOnly, admin.ModelAdmin):
    """Verification, transfers and removal go through `manage.py domain` (audited)."""

    list_display = ["domain", "account", "status", "verified_how", "include_subdomains",
                    "last_checked_at"]
    list_filter = ["status", "verified_how", "include_subdomains"]
    search_fields = ["domain", "account__name", "account__slug"]
    raw_id_fields = ["account"]
    inlines = [DkimKeyInline, DomainEventInline]


@admin.register(DkimKey)
class DkimKeyAdmin(ReadOnly, admin.ModelAdmin):
    list_display = ["selector", "sending_domain", "algorithm", "state", "dns_status", "created"]
    list_filter = ["state", "algorithm"]
    search_fields = ["selector", "sending_domain__domain", "sending_domain__account__name"]
    fields = tuple(DKIM_KEY_FIELDS)
    exclude = DKIM_KEY_SECRETS
    raw_id_fields = ["sending_domain"]
    list_select_related = ["sending_domain"]


@admin.register(DomainEvent)
class DomainEventAdmin(ReadOnly, admin.ModelAdmin):
    """What alerts read: evidence, read-only."""

    list_display = ["created", "domain", "account", "kind"]
    list_filter = ["kind"]
    search_fields = ["domain", "account__name", "account__slug"]
    date_hierarchy = "created"
    raw_id_fields = ["account", "sending_domain"]
    list_select_related = ["account"]
