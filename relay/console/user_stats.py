"""One SMTP+ user's statistics page: the dashboard's charts for that user alone."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render

from accounts.models import SmtpUser
from accounts.tenancy import AccountRequest, member_required
from relay.console.stats import statistics_context


@member_required()
def user_stats(request: AccountRequest, pk: int) -> HttpResponse:
    smtp_user = get_object_or_404(SmtpUser, pk=pk, account=request.account)
    context = statistics_context(request.account, request.GET.get("period"), smtp_user)
    return render(request, "relay/user_stats.html", {"smtp_user": smtp_user, **context})
