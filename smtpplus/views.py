from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render


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


def api_docs(request: HttpRequest) -> HttpResponse:
    """The API's reference, drawn by static/js/apidocs.js from /api/v1/openapi.json (no
    third-party script: the console's CSP allows only our own). Public, like the
    document it reads: it describes the API, it opens nothing."""
    return render(request, "api_docs.html")
