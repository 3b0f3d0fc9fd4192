"""Counting API calls per key in the database, so every console process counts on the
same rows: the per-key rate limit (`API_RATE_LIMIT`) and the brake on password guessing
through the send API's HTTP Basic login.

A counter is a row (`ApiRateCount`) under a key with a window end. `hit()` increments it
in the database (never read-modify-write, so concurrent calls in other processes all
count) and starts a new window when the old one has ended.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from accounts.models import ApiRateCount


@dataclass(frozen=True)
class Count:
    """A counter after a hit: how many in the window, and seconds until it ends."""

    count: int
    retry_after: int


def _seconds_until(ends: datetime) -> int:
    left = (ends - timezone.now()).total_seconds()
    return max(1, math.ceil(left))


def hit(key: str, window_seconds: int) -> Count:
    """Count one more under `key` in its current window (a new window of
    `window_seconds` if there is none)."""
    now = timezone.now()
    for _ in range(3):
        # No transaction around the two statements (each commits on its own): the count
        # read back may include other processes' calls since, which only errs on the
        # side of the limit.
        rows = ApiRateCount.objects.filter(key=key, window_ends__gt=now)
        if rows.update(count=F("count") + 1):
            found = rows.values_list("count", "window_ends").first()
            if found is not None:
                return Count(found[0], _seconds_until(found[1]))
            continue  # the window ended just now: start the next one
        ends = now + timedelta(seconds=window_seconds)
        try:
            with transaction.atomic():
                # The key's old window (if any) goes; so do other ended windows, a few
                # at a time, so the table does not grow with every key ever seen.
                stale = ApiRateCount.objects.filter(window_ends__lte=now)
                stale.filter(key=key).delete()
                ids = list(stale.values_list("id", flat=True)[:100])
                ApiRateCount.objects.filter(id__in=ids).delete()
                ApiRateCount.objects.create(key=key, count=1, window_ends=ends)
            return Count(1, _seconds_until(ends))
        except IntegrityError:
            continue  # another process created it in between: count on that row
    raise RuntimeError(f"could not count under {key!r}")


def current(key: str) -> Count:
    """The count in `key`'s current window (0 when none is running)."""
    row = ApiRateCount.objects.filter(key=key, window_ends__gt=timezone.now()).first()
    if row is None:
        return Count(0, 0)
    return Count(row.count, _seconds_until(row.window_ends))


def extend(key: str, seconds: int) -> None:
    """Make `key`'s current window end `seconds` from now (a cool-off)."""
    ApiRateCount.objects.filter(key=key).update(
        window_ends=timezone.now() + timedelta(seconds=seconds))
