"""What a POST wants shown on the page it redirects to (Post/Redirect/Get).

Every console POST answers with a redirect, so that reloading the page it lands on repeats
nothing (a second SMTP+ user, a second password reset, a second test message). What the
POST has to show (a new password, a test message's transcript) waits in the session for
the next page of the same target, and is taken from it once. Secrets are never put in
the session: the page reads them from their encrypted column when it shows them.
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest

KEY = "smtpplus_once"
# A redirect is followed at once; a note older than this is from a page never shown.
MAX_AGE_SECONDS = 300


def keep_for_next_page(request: HttpRequest, kind: str, target: int, data: dict[str, Any]) -> None:
    """Keep `data` (JSON-serialisable) for the next page of `kind` about `target`."""
    request.session[f"{KEY}:{kind}"] = {"target": target, "at": time.time(), "data": data}


def take(request: HttpRequest, kind: str, target: int) -> dict[str, Any] | None:
    """The data kept for this page, once; None when there is none (or it is stale)."""
    name = f"{KEY}:{kind}"
    value = request.session.get(name)
    if not isinstance(value, dict) or value.get("target") != target:
        return None
    del request.session[name]
    age = time.time() - float(value.get("at", 0))
    if not 0 <= age <= MAX_AGE_SECONDS:
        return None
    data = value.get("data")
    return data if isinstance(data, dict) else None
