"""What every /api/v1/ endpoint shares: the API key check, the JSON error shape, the
write guard and the audit actor of a call.

A request carries `Authorization: Bearer <key>`. A missing, unknown, revoked or expired
key, or one used from outside its allowed networks, is a 401; a read-only key on a write
endpoint is a 403; another account's object is a 404, as in the console. A key bound to
an SMTP+ user (a send key) may only send (`relay.sendapi`): a 403 anywhere else. Every
key has at most API_RATE_LIMIT calls a minute (counted in the database, for every console
process together): past it, a 429 with Retry-After. Every error is
`{"code": "...", "message": "..."}`: a stable machine code and a sentence for people.
"""

from __future__ import annotations

from typing import Any, cast

from django.conf import settings
from django.http import HttpRequest
from django.utils import timezone
from ninja import Schema
from ninja.security import HttpBearer

from accounts.api import ratelimit as apiratelimit
from accounts.api.keys import ip_allowed, key_matches, split_key
from accounts.audit import Actor
from accounts.models import Account, ApiKey
from accounts.tenancy import client_ip


class ApiError(Exception):
    """An error answer of the API: HTTP status, machine code, human message."""

    def __init__(self, status: int, code: str, message: str,
                 headers: dict[str, str] | None = None, **extra: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}
        # More fields of the JSON answer (the send API adds the SMTP reply).
        self.extra = extra


class ErrorOut(Schema):
    code: str
    message: str


# The error answers every authenticated endpoint may give, for the OpenAPI document.
AUTH_ERRORS: dict[int, Any] = {400: ErrorOut, 401: ErrorOut, 403: ErrorOut, 404: ErrorOut,
                               422: ErrorOut, 429: ErrorOut, 503: ErrorOut}
RATE_WINDOW_SECONDS = 60
LAST_USED_SECONDS = 60


def limit_calls(scope: str) -> None:
    """Count a call of `scope` ("key:<id>", "user:<id>"); a 429 past API_RATE_LIMIT."""
    limit = settings.API_RATE_LIMIT
    if not limit:
        return
    counted = apiratelimit.hit(f"calls:{scope}", RATE_WINDOW_SECONDS)
    if counted.count > limit:
        raise ApiError(
            429, "rate_limited",
            f"More than {limit} calls a minute with these credentials: try again in "
            f"{counted.retry_after} seconds.",
            headers={"Retry-After": str(counted.retry_after)},
        )


def verify_key(request: HttpRequest, token: str) -> ApiKey:
    """The usable key `token` names (its last use recorded), else a 401 or a 429."""
    prefix = split_key(token)
    key = (
        ApiKey.objects.select_related("account", "smtp_user").filter(prefix=prefix).first()
        if prefix else None
    )
    # The digest is compared even without a row, so an unknown prefix costs the same.
    matches = key_matches(token, key.digest if key is not None else "0" * 64)
    if key is None or not matches:
        raise ApiError(401, "invalid_key", "The API key is not valid.")
    if key.revoked_at is not None:
        raise ApiError(401, "revoked_key", "The API key has been revoked.")
    if not key.is_usable():
        raise ApiError(401, "expired_key", "The API key has expired.")
    ip = client_ip(request)
    if not ip_allowed(ip, key.allowed_networks):
        raise ApiError(401, "network_not_allowed",
                       "The API key may not be used from this network.")
    limit_calls(f"key:{key.pk}")
    now = timezone.now()
    # Written at most once a minute per key and address: a busy sender's every call
    # must not cost a database write (and its commit) of its own.
    last = key.last_used_at
    if last is None or ip != key.last_used_ip or (now - last).total_seconds() >= LAST_USED_SECONDS:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=now, last_used_ip=ip)
        key.last_used_at, key.last_used_ip = now, ip
    return key


class ApiKeyAuth(HttpBearer):
    """Bearer API keys; records when and from where each key was last used."""

    openapi_description = "An API key of the account: `Authorization: Bearer smtpk_…`."

    def authenticate(self, request: HttpRequest, token: str) -> ApiKey:
        key = verify_key(request, token)
        if key.smtp_user_id is not None:
            raise ApiError(403, "send_key", "This API key is a send key: it can only send "
                           "messages (POST /api/v1/messages); use a management key here.")
        return key


def api_key(request: HttpRequest) -> ApiKey:
    """The key the request authenticated with (every endpoint requires one)."""
    return cast(ApiKey, request.auth)  # type: ignore[attr-defined]


def account_of(request: HttpRequest) -> Account:
    return api_key(request).account


def writer(request: HttpRequest) -> Actor:
    """The audit actor of a write call; a 403 for a read-only key."""
    key = api_key(request)
    if not key.can_write:
        raise ApiError(403, "read_only_key", "This API key is read only; this call needs an admin key.")
    return Actor.api_key(key, ip=client_ip(request))


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"No such {what} in this account.")
