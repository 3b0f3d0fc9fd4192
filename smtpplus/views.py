from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render

from accounts.tenancy import AccountRequest, member_required


@member_required()
def dashboard(request: AccountRequest) -> HttpResponse:
    from relay.console.dashboard import dashboard_context

    return render(request, "dashboard.html", dashboard_context(request.account))


def no_account(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect("login")
    if getattr(request, "membership", None) is not None:
        return redirect("dashboard")
    return render(request, "no_account.html")


def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
