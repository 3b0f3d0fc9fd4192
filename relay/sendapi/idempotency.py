"""`Idempotency-Key`: a retried send returns the first answer instead of queueing again.

The first successful answer (202) to a request with a key is stored in the transaction
that queues the message, under the sender's scope (its send key, or its SMTP+ user for
HTTP Basic) and with a digest of the request. For 24 hours the same key with the same
request gets that answer again (with `Idempotent-Replayed: true`), and the same key with
another request is refused: it is a mistake that must not be guessed around. Refusals
are not stored: a retry is judged again (the admin may have authorized the sender since).
Two identical requests at the same time cannot both queue: the second one's record
collides with the first one's, which rolls the second one's message back.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone

from accounts.api.auth import ApiError
from accounts.models import IdempotentRequest

HEADER = "Idempotency-Key"
KEEP = timedelta(hours=24)
MAX_LENGTH = 255


def key_of(request: HttpRequest) -> str | None:
    """The request's idempotency key, None without one; a 422 for a malformed one."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_LENGTH or not key.isascii() or not key.isprintable():
        raise ApiError(422, "invalid_idempotency_key",
                       f"The {HEADER} header must be 1 to {MAX_LENGTH} printable ASCII "
                       "characters (a UUID is a good choice).")
    return key


def fingerprint(request: HttpRequest) -> str:
    digest = hashlib.sha256()
    for part in (request.method or "", request.path, request.META.get("QUERY_STRING", "")):
        digest.update(part.encode("utf-8", "surrogateescape") + b"\x00")
    digest.update(request.body)
    return digest.hexdigest()


def earlier(scope: str, key: str, fingerprint: str) -> IdempotentRequest | None:
    """The stored answer to this key, if any; a 422 when it was given to another request."""
    found = IdempotentRequest.objects.filter(
        scope=scope, key=key, created__gt=timezone.now() - KEEP).first()
    if found is not None and found.fingerprint != fingerprint:
        raise ApiError(422, "idempotency_key_reused",
                       f"This {HEADER} was used in the last 24 hours for a different "
                       "request: use a new key for a new message.")
    return found


def remember(scope: str, key: str, fingerprint: str, status: int,
             response: dict[str, Any]) -> None:
    """Store the answer (inside the caller's transaction). Raises IntegrityError when
    another request with the same key got there first."""
    expired = IdempotentRequest.objects.filter(created__lte=timezone.now() - KEEP)
    expired.filter(scope=scope, key=key).delete()
    # Old records go a few at a time, so the table holds about a day of keys.
    IdempotentRequest.objects.filter(id__in=list(expired.values_list("id", flat=True)[:100])
                                     ).delete()
    IdempotentRequest.objects.create(scope=scope, key=key, fingerprint=fingerprint,
                                     status=status, response=response)
