"""Relay events: failed logins, rejected senders and limits hit, for the current account."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import render
from django.utils.http import urlencode

from accounts.tenancy import AccountRequest, member_required
from relay.console.filters import filter_events, filter_params, keyset_page
from relay.forms import EventFilterForm


@member_required()
def event_list(request: AccountRequest) -> HttpResponse:
    account = request.account
    form = EventFilterForm(request.GET, account)
    filters = form.cleaned_data if form.is_valid() else {}
    page = keyset_page(
        filter_events(account, filters).select_related("smtp_user"),
        time_field="last_seen",
        before=request.GET.get("before"),
        after=request.GET.get("after"),
    )
    return render(request, "relay/events.html", {
        "form": form,
        "events": page.items,
        "page": page,
        "filter_query": urlencode(filter_params(form)),
    })
