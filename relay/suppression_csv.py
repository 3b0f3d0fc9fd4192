"""The suppression list as CSV: the export of the console, the API and `manage.py
suppression`, and the import that reads it back — each entry's reason, reply, note, time
added and expiry as exported — or reads a plain list of addresses (reason "imported").

An import is all or nothing: any bad row refuses the whole file, and the errors name
each bad row, numbered as a spreadsheet numbers it, and what is wrong with it. Cells a
spreadsheet would run as a formula are exported with a leading `'`, dropped on import.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts import audit
from accounts.audit import Actor
from accounts.models import Account
from relay.models import Suppression, SuppressionReason
from relay.suppressions import normalise

CSV_FIELDS = ["address", "reason", "reply", "note", "created", "expires"]
MAX_IMPORT_BYTES = 5 * 1024 * 1024  # the largest file the console and the API import
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class ImportResult:
    added: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # "row 3: 'x' is not an email address"


@dataclass(frozen=True)
class ImportRow:
    """One entry of an import file, checked (`created` None: the time of the import)."""

    address: str
    reason: str
    reply: str
    note: str
    created: datetime | None
    expires: datetime | None


_LIMITS = {"reply": 500, "note": 200}


def _uncell(value: str) -> str:
    """A cell as `_cell` wrote it, back to its value."""
    value = value.strip()
    return value[1:] if value.startswith("'") and value[1:2] in _FORMULA_START else value


def _moment(name: str, text: str) -> datetime | None:
    """A time of an export (ISO 8601; one without offset is in TIME_ZONE), else ValueError."""
    if not text:
        return None
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise ValueError(f"{name} {text!r} is not a date and time (YYYY-MM-DDTHH:MM:SS+00:00)")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def _columns(header: list[str]) -> list[str]:
    """The column names of a header row, else ValueError saying which one is wrong."""
    columns = [c.strip().lower() for c in header]
    for name in columns:
        if name not in CSV_FIELDS:
            raise ValueError(f"unknown column {name!r} (the columns are {', '.join(CSV_FIELDS)})")
        if columns.count(name) > 1:
            raise ValueError(f"column {name!r} appears twice")
    return columns


def _is_header(cells: list[str]) -> bool:
    """A first row that names an "address" column and holds no address is a header."""
    return "address" in (c.lower() for c in cells) and not any("@" in c for c in cells)


def _import_row(values: dict[str, str]) -> ImportRow:
    """One row's values by column name, checked; ValueError says what is wrong."""
    address = values.get("address", "")
    key = normalise(address)
    if key is None:
        raise ValueError(f"{address!r} is not an email address")
    reason = values.get("reason", "") or SuppressionReason.IMPORTED
    if reason not in SuppressionReason.values:
        raise ValueError(f"reason {reason!r} is not one of {', '.join(SuppressionReason.values)}")
    for name, limit in _LIMITS.items():
        if len(values.get(name, "")) > limit:
            raise ValueError(f"the {name} is longer than {limit} characters")
    return ImportRow(key, reason, values.get("reply", ""), values.get("note", ""),
                     _moment("created", values.get("created", "")),
                     _moment("expiry", values.get("expires", "")))


def parse_csv(text: str) -> tuple[list[ImportRow], list[str]]:
    """The entries of a CSV export (a header row names its columns) or of a plain list
    (one address a row, or the columns of an export in their order), and the errors
    naming each bad row (numbered as a spreadsheet shows them) and why."""
    rows: dict[str, tuple[int, ImportRow]] = {}
    errors: list[str] = []
    columns: list[str] | None = None
    reader = csv.reader(io.StringIO(text), strict=True)  # a stray quote is an error
    number = 0
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(f"row {number + 1}: not CSV ({exc})")
            break
        number += 1
        cells = [_uncell(c) for c in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        try:
            if columns is None and _is_header(cells):
                columns = _columns(cells)
                continue
            names = columns = columns or CSV_FIELDS
            if len(cells) > len(names):
                raise ValueError(f"{len(cells)} values, but there are {len(names)} columns")
            row = _import_row(dict(zip(names, cells, strict=False)))
        except ValueError as exc:
            errors.append(f"row {number}: {exc}")
            continue
        if row.address in rows and rows[row.address][1] != row:
            errors.append(f"row {number}: {row.address} is also on row {rows[row.address][0]}, "
                          "differently")
        rows.setdefault(row.address, (number, row))
    return [row for _, row in rows.values()], errors


def import_csv(account: Account, text: str, actor: Actor) -> ImportResult:
    """Add (or replace) the entries of a CSV export — reason, reply, note, time added and
    expiry as exported — or of a plain list, one address a row (reason "imported"). All or
    nothing: any bad row refuses the whole file, naming each bad row and why."""
    rows, errors = parse_csv(text)
    result = ImportResult(errors=errors)
    if errors:
        return result
    now = timezone.now()
    with transaction.atomic():
        for row in rows:
            Suppression.objects.update_or_create(
                account=account, address=row.address,
                defaults={"reason": row.reason, "reply": row.reply, "note": row.note,
                          "expires": row.expires, "created": row.created or now},
            )
            result.added.append(row.address)
        if rows:
            audit.record("suppression.imported", account=account, actor=actor,
                         target_label=f"{len(rows)} address(es)",
                         details={"count": len(rows)})
    return result


def _cell(value: str) -> str:
    """A cell a spreadsheet will not run as a formula (a leading ' it shows as text)."""
    return "'" + value if value[:1] in _FORMULA_START else value


def export_csv(entries: QuerySet[Suppression]) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_FIELDS)
    for e in entries:
        writer.writerow([_cell(e.address), e.reason, _cell(e.reply), _cell(e.note),
                         e.created.isoformat(), e.expires.isoformat() if e.expires else ""])
    return out.getvalue()
