"""The audit log page: the current account's events, newest first, with filters."""

from __future__ import annotations

import json
from typing import Any

from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import render

from accounts.forms import AuditFilterForm
from accounts.models import Account, AuditEvent
from accounts.tenancy import AccountRequest, member_required

PAGE_SIZE = 50


def filter_events(account: Account, filters: dict[str, Any]) -> QuerySet[AuditEvent]:
    """The account's events matching cleaned filter values (empty values are ignored)."""
    events = AuditEvent.objects.filter(account=account)
    if filters.get("action"):
        events = events.filter(action=filters["action"])
    if filters.get("actor"):
        events = events.filter(actor_label__icontains=filters["actor"].strip())
    if filters.get("target"):
        events = events.filter(target_label__icontains=filters["target"].strip())
    if filters.get("date_from"):
        events = events.filter(created__date__gte=filters["date_from"])
    if filters.get("date_to"):
        events = events.filter(created__date__lte=filters["date_to"])
    return events.order_by("-created", "-id")


def detail_items(details: Any) -> list[tuple[str, str]]:
    """Details as (key, value) text pairs; the template escapes them."""
    if not details:
        return []
    if not isinstance(details, dict):
        return [("", json.dumps(details, ensure_ascii=False))]
    items = []
    for key, value in details.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        items.append((str(key), text))
    return items


@member_required()
def audit_log(request: AccountRequest) -> HttpResponse:
    account = request.account
    form = AuditFilterForm(request.GET or None, account=account)
    form.is_valid()
    # Valid fields filter even when another one (a mistyped date) is shown as an error.
    filters = getattr(form, "cleaned_data", {})
    page = Paginator(filter_events(account, filters), PAGE_SIZE).get_page(request.GET.get("page"))
    rows = [(event, detail_items(event.details)) for event in page.object_list]
    return render(
        request,
        "accounts/audit.html",
        {"form": form, "page": page, "rows": rows, "filtered": bool(filters and any(filters.values()))},
    )
