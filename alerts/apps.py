from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db import transaction
from django.db.models.signals import post_save


def _account_created(sender: type, instance: Any, created: bool, raw: bool = False, **kwargs: Any) -> None:
    if not created or raw:
        return
    # Not at the top: this module is imported while the app registry is being
    # populated, before any model (which alerts.rules imports) can be.
    from alerts.rules import create_default_rule

    account_id = instance.pk
    # The owner's membership is written after the account, in the same transaction
    # (accounts.services.create_account): build the rule once it is all committed.
    transaction.on_commit(lambda: create_default_rule(account_id))


class AlertsConfig(AppConfig):
    name = "alerts"
    verbose_name = "Alert center"

    def ready(self) -> None:
        # Here, not at the top: models can only be imported once the app registry is
        # ready, and alerts.checks imports relay.listen, which imports relay.models.
        from accounts.models import Account
        from alerts import checks  # noqa: F401  (registers the system check)

        post_save.connect(_account_created, sender=Account, dispatch_uid="alerts.default_rule")
