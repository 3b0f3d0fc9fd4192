"""The relay process's settings, read once from Django settings (RELAY_*) at start."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from django.conf import settings

from relay import nodes
from relay.smtp import limit_sync, revocation


@dataclass
class RelayConfig:
    hostname: str
    listen: str
    listen_tls: str
    tls_cert: str
    tls_key: str
    require_tls: bool
    max_message_size: int
    max_recipients: int
    idle_timeout: int
    tls_handshake_timeout: float
    max_connections_per_ip: int
    auth_failure_limit: int
    auth_failure_window: int
    auth_cooloff: int
    db_threads: int
    # PostgreSQL: prepare the login and store statements on the relay's connections.
    db_prepare: bool = True
    reuse_port: bool = False
    heartbeat_seconds: float = nodes.HEARTBEAT_SECONDS
    # Seconds that sessions in flight get to finish after a stop request.
    stop_grace: float = 10.0
    # How often logged-in sessions are checked for admin changes (relay.revocation).
    session_check_seconds: float = revocation.CHECK_SECONDS
    # Keep successful logins while the session check confirms them (relay.login_cache).
    login_cache: bool = True
    # How often the limits are shared with the other relay processes (relay.limit_sync).
    limits_sync_seconds: float = limit_sync.SYNC_SECONDS
    # RELAY_NODE_NAME: this process's name on the console ("": host:pid).
    node_name: str = ""

    @classmethod
    def from_settings(cls, **overrides: Any) -> RelayConfig:
        """From Django settings; overrides by setting name (RELAY_MAX_RECIPIENTS=2) or
        by field name (max_recipients=2)."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f"RELAY_{f.name.upper()}"
            if hasattr(settings, name):
                values[f.name] = getattr(settings, name)
        for key, value in overrides.items():
            field_name = key.removeprefix("RELAY_").lower()
            if field_name not in {f.name for f in fields(cls)}:
                raise TypeError(f"unknown relay setting {key}")
            values[field_name] = value
        given = {key.removeprefix("RELAY_").lower() for key in overrides}
        if "tls_cert" in given and "require_tls" not in given:
            # As in settings: TLS is required by default once a certificate is set.
            values["require_tls"] = bool(values.get("tls_cert"))
        return cls(**values)
