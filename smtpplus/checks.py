"""System checks that warn about unsafe defaults (`manage.py check --deploy`)."""

import ipaddress
import math
from typing import Any

from django.conf import settings
from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from smtpplus.dns import parse_resolvers
from smtpplus.egress import egress_networks, spf_include
from smtpplus.settings import DEV_SECRET_KEY


@register(Tags.security, deploy=True)
def check_smtpplus_settings(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    warnings: list[Warning] = []
    if settings.SECRET_KEY == DEV_SECRET_KEY:
        warnings.append(
            Warning("SECRET_KEY is the development default.", hint="Set SECRET_KEY.", id="smtpplus.W001")
        )
    if not settings.SMTPPLUS_CREDENTIAL_KEYS:
        warnings.append(
            Warning(
                "SMTPPLUS_CREDENTIAL_KEYS is not set: SMTP+ passwords are encrypted with a key "
                "derived from SECRET_KEY.",
                hint="Generate one with `manage.py credentialkey` and set SMTPPLUS_CREDENTIAL_KEYS.",
                id="smtpplus.W002",
            )
        )
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        warnings.append(
            Warning(
                "The database is SQLite: fine for one machine, not for several relay nodes.",
                hint="Set DATABASE_URL=postgres://... for production.",
                id="smtpplus.W003",
            )
        )
    if not settings.RELAY_TLS_CERT:
        warnings.append(
            Warning(
                "RELAY_TLS_CERT is not set: SMTP+ credentials travel in clear text.",
                hint="Set RELAY_TLS_CERT and RELAY_TLS_KEY.",
                id="smtpplus.W004",
            )
        )
    if settings.RELAY_UPSTREAM.startswith("maildir:"):
        warnings.append(
            Warning(
                "RELAY_UPSTREAM is a local Maildir: accepted mail is not delivered anywhere.",
                hint="Set RELAY_UPSTREAM=smtp://host:587, smtps://... or mx.",
                id="smtpplus.W005",
            )
        )
    if settings.EMAIL_BACKEND.endswith(("filebased.EmailBackend", "console.EmailBackend")):
        warnings.append(
            Warning(
                "EMAIL_URL is not set: alert emails are written to files, not sent.",
                hint="Set EMAIL_URL=smtp+tls://user:pass@host:587.",
                id="smtpplus.W006",
            )
        )
    if settings.SMTPPLUS_CONSOLE_URL.rstrip("/") == "http://127.0.0.1:8000":
        warnings.append(
            Warning(
                "SMTPPLUS_CONSOLE_URL is the development default: the links in alerts and "
                "invitations point to http://127.0.0.1:8000.",
                hint="Set SMTPPLUS_CONSOLE_URL to the console's public address (https://...).",
                id="smtpplus.W007",
            )
        )
    if settings.ALERTS_WEBHOOK_ALLOW_PRIVATE:
        warnings.append(
            Warning(
                "ALERTS_WEBHOOK_ALLOW_PRIVATE is on: any account's alert webhook can reach "
                "this machine and the internal network.",
                hint="Turn it off unless every account is trusted with that.",
                id="smtpplus.W008",
            )
        )
    if settings.SMTPPLUS_SENDER_VERIFICATION == "off":
        warnings.append(
            Warning(
                "SMTPPLUS_SENDER_VERIFICATION is off: any account can authorize any domain "
                "or address and send as it, without proving that it owns it.",
                hint="Leave it at 'required' unless this relay serves one trusted account.",
                id="smtpplus.W009",
            )
        )
    return warnings


@register()
def check_sending_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Settings that would make sender verification or DNS lookups misbehave."""
    errors: list[Error] = []
    if settings.SMTPPLUS_SENDER_VERIFICATION not in ("required", "off"):
        errors.append(Error(
            f"SMTPPLUS_SENDER_VERIFICATION is {settings.SMTPPLUS_SENDER_VERIFICATION!r}.",
            hint="Set it to 'required' (the default) or 'off'.", id="smtpplus.E001"))
    try:
        parse_resolvers(list(settings.SMTPPLUS_DNS_RESOLVERS))
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), hint="Use host[:port] entries, e.g. 127.0.0.1:53.",
                            id="smtpplus.E002"))
    if settings.SMTPPLUS_DNS_TIMEOUT <= 0:
        errors.append(Error("SMTPPLUS_DNS_TIMEOUT must be a positive number of seconds.",
                            id="smtpplus.E003"))
    return errors


def _positive_seconds(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value > 0)


@register()
def check_relay_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """Relay timeouts the relay could not run with: zero or less would close every TLS
    client at once (or never time one out, for a value that is not finite)."""
    errors: list[Error] = []
    value = settings.RELAY_TLS_HANDSHAKE_TIMEOUT
    if not _positive_seconds(value):
        errors.append(Error(
            f"RELAY_TLS_HANDSHAKE_TIMEOUT must be a positive number of seconds, not {value!r}.",
            hint="Leave it unset (30) or set e.g. RELAY_TLS_HANDSHAKE_TIMEOUT=30.",
            id="smtpplus.E005"))
    return errors


@register()
def check_metrics_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    errors: list[Error] = []
    for network in settings.METRICS_ALLOWED_NETWORKS:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            errors.append(Error(f"METRICS_ALLOWED_NETWORKS: {network!r} is not a network.",
                                hint="Use addresses or CIDR networks, e.g. 10.0.0.0/8.",
                                id="smtpplus.E004"))
    return errors


@register()
def check_egress_settings(app_configs: Any = None, **kwargs: Any) -> list[Error]:
    """What the SPF check of sending domains compares records with must be readable."""
    errors: list[Error] = []
    try:
        egress_networks()
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), hint="Comma-separated addresses or networks.",
                            id="smtpplus.E020"))
    try:
        spf_include()
    except ImproperlyConfigured as exc:
        errors.append(Error(str(exc), hint="The domain your smarthost asks you to include: "
                            "in SPF records.", id="smtpplus.E021"))
    return errors
