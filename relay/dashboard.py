"""What the dashboard shows: relay status, queue, last 24 hours, latest problems."""

from __future__ import annotations

from typing import Any

from accounts.models import Account


def dashboard_context(account: Account) -> dict[str, Any]:
    return {}
