"""/api/v1/suppressions: the account's suppression list, as the console's page and
`manage.py suppression` have it — search and reason filter (keyset pages), one entry,
add, remove, CSV export and import. Every change goes through `relay.suppressions` and
`relay.suppression_csv`, so validation, normalisation and the audit rows (the key's name
as actor) are the same."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status

from accounts.api.auth import AUTH_ERRORS, ApiError, ErrorOut, account_of, not_found, writer
from relay import suppression_csv, suppressions
from relay.console.filters import keyset_page
from relay.console.suppressions import PAGE_SIZE
from relay.models import Suppression, SuppressionReason

router = Router(tags=["Suppression list"])


class SuppressionFilters(Schema):
    q: str | None = Field(None, max_length=320, description="Part of the address.")
    reason: SuppressionReason | None = None
    before: str | None = Field(None, description="Cursor from `older`: the next older page.")
    after: str | None = Field(None, description="Cursor from `newer`: the next newer page.")


class ExportFilters(Schema):
    q: str | None = Field(None, max_length=320, description="Part of the address.")
    reason: SuppressionReason | None = None


class SuppressionOut(Schema):
    id: int
    address: str = Field(description="Lower case, the domain as its A-label.")
    reason: SuppressionReason
    reply: str = Field(description="The upstream reply that caused it (automatic entries).")
    note: str
    message_id: int | None = Field(description="The message whose failure caused it.")
    created: datetime = Field(description="Since when the address is suppressed.")
    expires: datetime | None
    active: bool = Field(description="The relay refuses the address now (not expired).")


class SuppressionPageOut(Schema):
    items: list[SuppressionOut]
    newer: str | None
    older: str | None


class SuppressionIn(Schema):
    address: str = Field(max_length=320)
    note: str = Field("", max_length=200, description="Why (shown in the console).")
    expires_days: int | None = Field(None, ge=1, le=suppressions.MAX_EXPIRY_DAYS,
                                     description="Lift the entry after this many days.")


class ImportedOut(Schema):
    added: list[str] = Field(description="The addresses added or replaced.")


def _out(entry: Suppression) -> dict[str, Any]:
    data = {name: getattr(entry, name) for name in SuppressionOut.model_fields if name != "active"}
    data["active"] = entry.expires is None or entry.expires > timezone.now()
    return data


def _entry(request: HttpRequest, pk: int) -> Suppression:
    entry = Suppression.objects.filter(pk=pk, account=account_of(request)).first()
    if entry is None:
        raise not_found("suppressed address")
    return entry


@router.get("/suppressions", response={200: SuppressionPageOut, **AUTH_ERRORS})
def list_suppressions(request: HttpRequest, filters: Query[SuppressionFilters]) -> Any:
    """The account's suppressed addresses, newest first, 100 a page, filtered like the
    console's page (`q`: part of the address; `reason`)."""
    entries = suppressions.search(account_of(request), filters.q or "", filters.reason or "")
    page = keyset_page(entries, time_field="created", before=filters.before,
                       after=filters.after, size=PAGE_SIZE)
    return {"items": [_out(e) for e in page.items], "newer": page.newer, "older": page.older}


@router.post("/suppressions", response={201: SuppressionOut, **AUTH_ERRORS})
def add_suppression(request: HttpRequest, body: SuppressionIn) -> Any:
    """Suppress an address by hand (reason `manual`); an address already listed is
    renewed with this note and expiry. Mail to it is refused from now on."""
    actor = writer(request)
    try:
        expires = suppressions.expires_after(body.expires_days)
        entry = suppressions.add(account_of(request), body.address, actor, note=body.note,
                                 expires=expires)
    except suppressions.InvalidSuppression as exc:
        raise ApiError(422, "invalid_suppression", str(exc)) from exc
    return Status(201, _out(entry))


CSV_OUT = {"responses": {200: {"description": "The entries as CSV, as the console exports "
                                              "them.",
                               "content": {"text/csv": {"schema": {"type": "string"}}}}}}


@router.get("/suppressions/export", response={200: None, **AUTH_ERRORS}, openapi_extra=CSV_OUT)
def export_suppressions(request: HttpRequest, filters: Query[ExportFilters]) -> HttpResponse:
    """The entries (all, or those the filters select) as CSV: `address, reason, reply,
    note, created, expires`, as the console's "Export CSV"."""
    entries = suppressions.search(account_of(request), filters.q or "", filters.reason or "")
    response = HttpResponse(suppression_csv.export_csv(entries), content_type="text/csv")
    response["Content-Disposition"] = 'attachment; filename="suppressions.csv"'
    return response


CSV_IN = {
    "requestBody": {
        "required": True,
        "description": "A CSV export (its header row names the columns), or one address a "
                       "row; UTF-8.",
        "content": {"text/csv": {"schema": {"type": "string"}}},
    },
}


@router.post("/suppressions/import", response={200: ImportedOut, 413: ErrorOut, **AUTH_ERRORS},
             openapi_extra=CSV_IN)
def import_suppressions(request: HttpRequest) -> Any:
    """Add the entries of a CSV file, as the console's import: reason, reply, note, time
    added and expiry are kept as exported; a plain list's addresses get reason `imported`.
    All or nothing: a bad row refuses the whole file, and the answer names each bad row."""
    actor = writer(request)
    if len(request.body) > suppression_csv.MAX_IMPORT_BYTES:
        limit = suppression_csv.MAX_IMPORT_BYTES // 1024 // 1024
        raise ApiError(413, "request_too_large", f"The file is larger than {limit} MB.")
    try:
        text = request.body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ApiError(422, "invalid_csv", "The file is not UTF-8 text.") from exc
    result = suppression_csv.import_csv(account_of(request), text, actor)
    if result.errors:
        raise ApiError(422, "invalid_csv", "Nothing imported: " + "; ".join(result.errors))
    return {"added": result.added}


@router.get("/suppressions/{pk}", response={200: SuppressionOut, **AUTH_ERRORS})
def show_suppression(request: HttpRequest, pk: int) -> Any:
    return _out(_entry(request, pk))


@router.delete("/suppressions/{pk}", response={204: None, **AUTH_ERRORS})
def remove_suppression(request: HttpRequest, pk: int) -> Any:
    """Send to the address again (audited)."""
    actor = writer(request)
    entry = _entry(request, pk)
    suppressions.remove(entry.account, [entry.address], actor)
    return Status(204, None)
