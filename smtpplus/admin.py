"""Shared pieces of the Django admin (the operators' view of the database)."""

from __future__ import annotations

from django.http import HttpRequest


class ReadOnly:
    """No add, change or delete, for operators too: such rows change only through the
    console or the management commands, which check what they write (domains stored as
    lower-case A-labels, or the relay never matches them) and write the audit row."""

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
