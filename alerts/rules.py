"""State changes on alert rules: each writes its audit row itself.

The webhook secret is generated here, stored encrypted, and returned to the caller only
when it is created or reset — the console shows it once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts import audit
from accounts.audit import Actor
from accounts.credentials import encrypt_password
from accounts.models import Account, Membership, Role, SmtpUser
from alerts.models import AlertRule, EventType, Frequency

logger = logging.getLogger("smtpplus.alerts")

DEFAULT_RULE_NAME = "Delivery failures"
DEFAULT_EVENTS = [EventType.DELIVERY_FAILED.value, EventType.DELIVERY_EXPIRED.value]

RULE_FIELDS = (
    "name", "enabled", "events", "delay_minutes", "login_threshold", "login_window_minutes",
    "all_users", "frequency", "email_recipients", "webhook_url",
)


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _summary(rule: AlertRule) -> dict[str, Any]:
    return {
        "events": list(rule.events),
        "frequency": rule.frequency,
        "enabled": rule.enabled,
        "emails": rule.email_list,
        "webhook": rule.webhook_display,
        "scope": "all" if rule.all_users else [u.username for u in rule.smtp_users.all()],
    }


def _apply(rule: AlertRule, data: dict[str, Any]) -> None:
    for name in RULE_FIELDS:
        if name in data:
            setattr(rule, name, data[name])


def _ensure_secret(rule: AlertRule) -> str | None:
    """Give a webhook rule a secret if it has none; returns the new secret, if any."""
    if rule.webhook_url and not rule.webhook_secret_encrypted:
        secret = new_secret()
        rule.webhook_secret_encrypted = encrypt_password(secret)
        return secret
    return None


@transaction.atomic
def create_rule(
    account: Account,
    data: dict[str, Any],
    smtp_users: Iterable[SmtpUser] = (),
    actor: Actor | None = None,
) -> tuple[AlertRule, str | None]:
    """Create a rule; returns it and its webhook secret (to be shown once), if any."""
    now = timezone.now()
    rule = AlertRule(account=account, created=now, watch_since=now, last_alert_at=now)
    _apply(rule, data)
    secret = _ensure_secret(rule)
    rule.save()
    rule.smtp_users.set([u for u in smtp_users if u.account_id == account.pk])
    audit.record(
        "alert_rule.create", account=account, actor=actor, target=rule,
        details=_summary(rule),
    )
    return rule, secret


@transaction.atomic
def update_rule(
    rule: AlertRule,
    data: dict[str, Any],
    smtp_users: Iterable[SmtpUser] = (),
    actor: Actor | None = None,
) -> str | None:
    """Change a rule; returns a new webhook secret if the rule just got a webhook.

    A webhook URL equal to the rule's displayed one (its password masked) keeps the stored
    URL: the edit form shows and sends back the masked URL when the webhook is unchanged.
    """
    if rule.webhook_url and data.get("webhook_url") == rule.webhook_display:
        data = {**data, "webhook_url": rule.webhook_url}
    was_enabled = rule.enabled
    _apply(rule, data)
    if not rule.webhook_url:
        rule.webhook_secret_encrypted = ""
    secret = _ensure_secret(rule)
    _save_switched(rule, was_enabled, [*RULE_FIELDS, "webhook_secret_encrypted"])
    rule.smtp_users.set([u for u in smtp_users if u.account_id == rule.account_id])
    audit.record(
        "alert_rule.update", account=rule.account, actor=actor, target=rule,
        details=_summary(rule),
    )
    return secret


def _save_switched(rule: AlertRule, was_enabled: bool, fields: list[str]) -> None:
    """Save `fields` of a rule that may just have been turned on or off.

    Only the fields the console changes: the alert sender advances the rule's watermark
    and last alert time meanwhile, and a save of the whole row would turn them back.
    """
    fields = [*fields, "changed"]
    if rule.enabled and not was_enabled:
        # Events that happened while the rule was off are not alerted when it comes back on.
        rule.watch_since = rule.collected_until = rule.last_alert_at = timezone.now()
        fields += ["watch_since", "collected_until", "last_alert_at"]
    rule.save(update_fields=fields)
    if was_enabled and not rule.enabled:
        _drop_pending(rule)


def _drop_pending(rule: AlertRule) -> None:
    rule.alert_events.filter(alert__isnull=True).delete()


@transaction.atomic
def set_enabled(rule: AlertRule, enabled: bool, actor: Actor | None = None) -> None:
    if rule.enabled == enabled:
        return
    rule.enabled = enabled
    _save_switched(rule, not enabled, ["enabled"])
    audit.record(
        "alert_rule.enable" if enabled else "alert_rule.disable", account=rule.account,
        actor=actor, target=rule,
    )


@transaction.atomic
def delete_rule(rule: AlertRule, actor: Actor | None = None) -> None:
    account = rule.account
    audit.record(
        "alert_rule.delete", account=account, actor=actor, target=rule,
        details=_summary(rule),
    )
    # Alerts already sent stay in the notifications log with their events (their rule
    # link becomes empty); events not yet alerted go with the rule.
    _drop_pending(rule)
    rule.delete()


@transaction.atomic
def reset_secret(rule: AlertRule, actor: Actor | None = None) -> str:
    """A new webhook secret; the old one stops being used at once."""
    secret = new_secret()
    rule.webhook_secret_encrypted = encrypt_password(secret)
    rule.save(update_fields=["webhook_secret_encrypted", "changed"])
    audit.record(
        "alert_rule.reset_secret", account=rule.account, actor=actor, target=rule,
    )
    return secret


def create_default_rule(account_id: int) -> AlertRule | None:
    """New accounts start with one rule: permanent failures and expiries, as needed, to
    the owner's email. Does nothing if the account already has a rule or no owner."""
    account = Account.objects.filter(pk=account_id).first()
    if account is None or account.alert_rules.exists():
        return None
    owner = (
        Membership.objects.filter(account=account, role=Role.OWNER)
        .select_related("user").order_by("created", "id").first()
    )
    email = (owner.user.email or owner.user.get_username()) if owner else ""
    if "@" not in email:
        logger.info("account %s has no owner email yet: no default alert rule", account.pk)
        return None
    rule, _ = create_rule(
        account,
        {
            "name": DEFAULT_RULE_NAME,
            "events": list(DEFAULT_EVENTS),
            "frequency": Frequency.AS_NEEDED.value,
            "email_recipients": email,
            "all_users": True,
        },
        actor=Actor.system("SMTP+ (default rule of a new account)"),
    )
    return rule
