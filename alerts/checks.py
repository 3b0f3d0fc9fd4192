"""Alerts must not travel through our own relay: a broken relay could then not alert."""

from __future__ import annotations

import socket
from typing import Any

from django.conf import settings
from django.core.checks import Warning, register

from relay.listen import ListenSpecError, parse_listen

LOCAL_NAMES = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::"}  # noqa: S104 (names, not a bind)


def _relay_ports() -> set[int]:
    ports: set[int] = set()
    for spec in (settings.RELAY_LISTEN, settings.RELAY_LISTEN_TLS):
        try:
            ports.update(port for _, port in parse_listen(spec or ""))
        except ListenSpecError:
            pass
    return ports


@register()
def check_alert_email_not_through_relay(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    if not settings.EMAIL_BACKEND.endswith("smtp.EmailBackend"):
        return []
    host = (settings.EMAIL_HOST or "").lower().strip("[]")
    local = {*LOCAL_NAMES, settings.RELAY_HOSTNAME.lower(), socket.gethostname().lower()}
    if host in local and settings.EMAIL_PORT in _relay_ports():
        return [
            Warning(
                f"EMAIL_URL points at this SMTP+ relay ({host}:{settings.EMAIL_PORT}): alert "
                "emails would go through the relay and its queue, so a broken relay or "
                "upstream could not alert anyone.",
                hint="Set EMAIL_URL to another mail server (your provider's SMTP submission).",
                id="alerts.W001",
            )
        ]
    return []
