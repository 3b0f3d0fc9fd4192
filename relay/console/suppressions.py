"""The suppression list page: search, filter by reason, add, remove, CSV import and export.

Scoped to `request.account`; changes are POST-only, for admins, audited through
`relay.suppressions`, and answered with a redirect (so a reload repeats nothing).
"""

from __future__ import annotations

from django.contrib import messages as flash
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from accounts.audit import Actor
from accounts.models import Role
from accounts.tenancy import AccountRequest, member_required
from relay import suppression_csv, suppressions
from relay.models import Suppression, SuppressionReason

PAGE_SIZE = 100


def _entries(request: AccountRequest) -> tuple[QuerySet[Suppression], dict[str, str]]:
    q = request.GET.get("q", "").strip()
    reason = request.GET.get("reason", "")
    params = {"q": q} if q else {}
    if reason in SuppressionReason.values:
        params["reason"] = reason
    return suppressions.search(request.account, q, reason), params


@member_required()
def suppression_list(request: AccountRequest) -> HttpResponse:
    entries, params = _entries(request)
    paginator: Paginator[Suppression] = Paginator(entries, PAGE_SIZE)
    page = paginator.get_page(request.GET.get("page"))
    return render(request, "relay/suppressions.html", {
        "page": page,
        "entries": page.object_list,
        "params": params,
        "filter_query": urlencode(params),
        "reasons": SuppressionReason.choices,
        "now": timezone.now(),
        "can_edit": request.membership.can_edit,
    })


@member_required()
def suppression_export(request: AccountRequest) -> HttpResponse:
    entries, _ = _entries(request)
    response = HttpResponse(suppression_csv.export_csv(entries), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="suppressions.csv"'
    return response


def _back(request: AccountRequest) -> HttpResponse:
    query = request.POST.get("back_query", "")
    url = reverse("relay:suppressions")
    return redirect(f"{url}?{query}" if query else url)


@member_required(Role.ADMIN)
@require_POST
def suppression_add(request: AccountRequest) -> HttpResponse:
    address = request.POST.get("address", "").strip()
    try:
        expires = suppressions.expires_after(request.POST.get("expires_days", ""))
        entry = suppressions.add(request.account, address, Actor.from_request(request),
                                 note=request.POST.get("note", ""), expires=expires)
    except suppressions.InvalidSuppression as exc:
        flash.error(request, str(exc))
    else:
        flash.success(request, f"{entry.address} added: mail to it is refused from now on.")
    return _back(request)


@member_required(Role.ADMIN)
@require_POST
def suppression_remove(request: AccountRequest) -> HttpResponse:
    removed = suppressions.remove(request.account, request.POST.getlist("address"),
                                  Actor.from_request(request))
    if removed:
        flash.success(request, f"Removed {', '.join(removed)}: mail to it is sent again.")
    else:
        flash.error(request, "That address is not on the list (any more).")
    return _back(request)


@member_required(Role.ADMIN)
@require_POST
def suppression_import(request: AccountRequest) -> HttpResponse:
    upload = request.FILES.get("file")
    if upload is None:
        flash.error(request, "Choose a CSV file to import.")
        return _back(request)
    if upload.size is not None and upload.size > suppression_csv.MAX_IMPORT_BYTES:
        limit = suppression_csv.MAX_IMPORT_BYTES // 1024 // 1024
        flash.error(request, f"{upload.name}: larger than {limit} MB.")
        return _back(request)
    try:
        text = upload.read().decode("utf-8-sig")
    except UnicodeDecodeError:
        flash.error(request, f"{upload.name}: not UTF-8 text.")
        return _back(request)
    result = suppression_csv.import_csv(request.account, text, Actor.from_request(request))
    if result.errors:
        shown = "; ".join(result.errors[:10])
        more = f" (and {len(result.errors) - 10} more)" if len(result.errors) > 10 else ""
        flash.error(request, f"Nothing imported from {upload.name}: {shown}{more}.")
    else:
        flash.success(request, f"Imported {len(result.added)} address(es) from {upload.name}.")
    return _back(request)
