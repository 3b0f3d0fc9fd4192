"""Who sends through the send API: a send key (an API key bound to an SMTP+ user) or the
SMTP+ user's own credentials (HTTP Basic, the relay's login).

Basic credentials go through `relay.smtp.login.log_in`, the relay's own login (one query,
the same decision, the same "last login" write), and a refusal records the same relay
event as a refused AUTH. Failed Basic logins from one client address are counted in the
database with the relay's limits (RELAY_AUTH_FAILURE_LIMIT within
RELAY_AUTH_FAILURE_WINDOW, then RELAY_AUTH_COOLOFF seconds refused), so guessing over
HTTP is no faster than over SMTP. Basic is refused over plain HTTP, except from this
machine (loopback) or with DEBUG: the password would travel readable.

A send key's SMTP+ user and sender policy are read with the relay's login query too
(`relay.smtp.login.load_login`), so both ways see exactly what an SMTP login sees.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import cast

from django.conf import settings
from django.http import HttpRequest
from ninja.security import HttpBasicAuth, HttpBearer

from accounts.api import ratelimit
from accounts.api.auth import limit_calls, verify_key
from accounts.models import ApiKey, SmtpUser
from accounts.senders import SenderPolicy
from accounts.tenancy import client_ip
from relay.models import COOLOFF_STARTED, EventKind
from relay.sendapi.errors import refusal
from relay.sendapi.events import record_event
from relay.smtp import login, replies
from relay.smtp.accept import printable
from relay.smtp.config import RelayConfig


@dataclass(frozen=True)
class Sender:
    """Who is sending: the SMTP+ user as the relay's login sees it, and how it came."""

    user: SmtpUser
    policy: SenderPolicy
    api_key: ApiKey | None = None

    @property
    def scope(self) -> str:
        """Whose idempotency keys and rate limit these are."""
        return f"key:{self.api_key.pk}" if self.api_key else f"user:{self.user.pk}"


def sender_of(request: HttpRequest) -> Sender:
    return cast(Sender, request.auth)  # type: ignore[attr-defined]


class SendKeyAuth(HttpBearer):
    openapi_description = ("A send key (an API key bound to an SMTP+ user): "
                           "`Authorization: Bearer smtpk_…`.")

    def authenticate(self, request: HttpRequest, token: str) -> Sender:
        key = verify_key(request, token)
        if key.smtp_user is None:
            raise refusal(403, "not_a_send_key", "This API key is not bound to an SMTP+ user, "
                          "so it cannot send: create a send key for the SMTP+ user, or log in "
                          "with the SMTP+ user's credentials (HTTP Basic).")
        user, policy = login.load_login(key.smtp_user.username)
        if user is None or policy is None or user.account_id != key.account_id:
            raise refusal(403, "not_a_send_key", "The SMTP+ user of this send key is gone.")
        if not user.active:
            reply = replies.AUTH_FAILED
            record_event(request, EventKind.AUTH_FAILED, reply, username=user.username,
                         account_id=user.account_id, smtp_user_id=user.pk,
                         reason=f"user disabled (send key {key.name})")
            raise refusal(403, "smtp_user_disabled",
                          f"SMTP+ user {user.username} is disabled: enable it to send.")
        return Sender(user, policy, key)


def _plain_http_allowed(request: HttpRequest) -> bool:
    if request.is_secure() or settings.DEBUG:
        return True
    ip = client_ip(request)
    try:
        return ip is not None and ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


class SmtpUserBasicAuth(HttpBasicAuth):
    openapi_description = ("The SMTP+ user's own user name and password (HTTP Basic), "
                           "over HTTPS only.")

    def authenticate(self, request: HttpRequest, username: str, password: str) -> Sender:
        ip = client_ip(request)
        tried = printable(username.strip(), 320)
        if not _plain_http_allowed(request):
            record_event(request, EventKind.TLS_REQUIRED, replies.TLS_REQUIRED, username=tried,
                         reason="HTTP Basic over plain HTTP")
            raise refusal(403, "tls_required", replies.TLS_REQUIRED, detail=(
                "HTTP Basic credentials are accepted over HTTPS only (or from this machine): "
                "call the API over https://, or use a send key"))
        config = RelayConfig.from_settings()
        failures = f"basic-failures:{ip}"
        if config.auth_failure_limit:
            seen = ratelimit.current(failures)
            if seen.count >= config.auth_failure_limit:
                reply = replies.cooloff_reply(seen.retry_after)
                record_event(request, EventKind.AUTH_COOLOFF, reply, username=tried,
                             reason="connection during cool-off")
                raise refusal(429, "login_cooloff", reply,
                              headers={"Retry-After": str(seen.retry_after)})
        outcome = login.log_in(username, password, ip, load_hourly=False)
        result = outcome.result
        if not result.ok or result.smtp_user is None or outcome.policy is None:
            self._failed(request, tried, result.reason, result.smtp_user, config, failures)
        assert result.smtp_user is not None and outcome.policy is not None
        limit_calls(f"user:{result.smtp_user.pk}")
        return Sender(result.smtp_user, outcome.policy)

    @staticmethod
    def _failed(request: HttpRequest, tried: str, reason: str, user: SmtpUser | None,
                config: RelayConfig, failures: str) -> None:
        account_id, user_id = (user.account_id, user.pk) if user else (None, None)
        record_event(request, EventKind.AUTH_FAILED, replies.AUTH_FAILED, reason=reason,
                     username=tried, account_id=account_id, smtp_user_id=user_id)
        if config.auth_failure_limit:
            counted = ratelimit.hit(failures, config.auth_failure_window)
            if counted.count == config.auth_failure_limit:
                ratelimit.extend(failures, config.auth_cooloff)
                record_event(request, EventKind.AUTH_COOLOFF,
                             replies.cooloff_reply(config.auth_cooloff),
                             reason=COOLOFF_STARTED, username=tried, account_id=account_id,
                             smtp_user_id=user_id)
        raise refusal(401, "auth_failed", replies.AUTH_FAILED,
                      headers={"WWW-Authenticate": 'Basic realm="SMTP+", charset="UTF-8"'})
