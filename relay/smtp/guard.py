"""The relay's door: who may connect, who may try to log in, who may send this hour.

One `Guard` per relay process holds the in-memory limits (`relay.smtp.limits`, shared
with the other processes by `relay.smtp.limit_sync`) and turns them into replies and
relay events, so that the protocol class asks one question
per connection (`admit`) and one per AUTH (`admit_login`), and says when a connection
closes (`close`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from relay.models import COOLOFF_STARTED, EventKind
from relay.smtp.checks import Reject
from relay.smtp.limits import ConnectionLimiter, CooloffOwner, HourlyLimits, LoginFailures
from relay.smtp.replies import TOO_MANY_CONNECTIONS, cooloff_reply

if TYPE_CHECKING:
    from relay.nodes import ConnectionCounter
    from relay.smtp.config import RelayConfig
    from relay.smtp.context import EventSink


class Guard:
    """Connections per client IP, the failed-login cool-off and the hourly counts."""

    def __init__(
        self, config: RelayConfig, record_event: EventSink, stats: ConnectionCounter
    ) -> None:
        self.connections = ConnectionLimiter(config.max_connections_per_ip)
        self.failures = LoginFailures(
            config.auth_failure_limit, config.auth_failure_window, config.auth_cooloff
        )
        self.hourly = HourlyLimits()
        self._record_event = record_event
        self._stats = stats

    def admit(self, ip: str | None, port: int) -> str | None:
        """Count a new connection; the 421 reply (its event recorded) if it must be
        refused. An admitted connection is let go with `close()`."""
        self._stats.connection(port)
        refusal = self._cooloff_refusal(ip, port, "connection during cool-off")
        if refusal is not None:
            return refusal
        if not self.connections.acquire(ip or ""):
            self._record_event(EventKind.CONNECTION_LIMIT, client_ip=ip or None, port=port,
                               reply=TOO_MANY_CONNECTIONS,
                               reason=f"more than {self.connections.max_per_ip} "
                                      "connections at once")
            return TOO_MANY_CONNECTIONS
        return None

    def close(self, ip: str | None) -> None:
        """An admitted connection has closed."""
        self.connections.release(ip or "")

    def admit_login(self, ip: str | None, port: int) -> str | None:
        """The 421 reply (its event recorded) if `ip` may not try to log in now."""
        return self._cooloff_refusal(ip, port, "login attempt during cool-off")

    def login_failed(self, ip: str | None, owner: CooloffOwner | None = None) -> Reject | None:
        """Count a failed login (by `owner`'s username: the account that sees the
        cool-off); the refusal to send (and record, as `owner`'s) if it starts the
        client's cool-off (shared with the other processes at the next limit sync)."""
        failures = self.failures
        if not failures.record_failure(ip or "", owner):
            return None
        return Reject(cooloff_reply(failures.cooloff), EventKind.AUTH_COOLOFF,
                      f"{COOLOFF_STARTED}: {failures.limit} failed logins within "
                      f"{int(failures.window)} seconds")

    def _cooloff_refusal(self, ip: str | None, port: int, reason: str) -> str | None:
        left = self.failures.remaining_cooloff(ip or "")
        if not left:
            return None
        reply = cooloff_reply(left)
        owner = self.failures.owner(ip or "")  # the account whose username started it
        self._record_event(EventKind.AUTH_COOLOFF, client_ip=ip or None, port=port,
                           reply=reply, reason=reason, username=owner.username,
                           account_id=owner.account_id, smtp_user_id=owner.smtp_user_id)
        return reply
