"""`manage.py rotatecredentials`: re-encrypt every SMTP+ password with the newest key.

Run it after putting a new key first in SMTPPLUS_CREDENTIAL_KEYS. It also recomputes the
login digests under the newest key (see accounts/credentials.py) and re-encrypts the alert
webhooks' signing secrets and the sending domains' DKIM private keys, so the old key can be
removed afterwards.
Prints JSON counts; exits 1 if a password could not be decrypted with any configured key.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from accounts import audit
from accounts.audit import Actor
from accounts.credentials import decrypt_password, digest_password, reencrypt
from accounts.models import DkimKey, SmtpUser
from alerts.models import AlertRule


def rotate_batch(after_pk: int, size: int) -> tuple[int, int, list[str]]:
    """Re-encrypt up to `size` users with pk > after_pk.

    Returns (last pk seen, number re-encrypted, usernames that failed). The rows are
    locked for the batch so that a concurrent password reset is not overwritten.
    """
    with transaction.atomic():
        users = list(
            SmtpUser.objects.select_for_update()
            .filter(pk__gt=after_pk)
            .order_by("pk")
            .only("pk", "username", "password_encrypted", "password_digest")[:size]
        )
        done: list[SmtpUser] = []
        failed: list[str] = []
        for user in users:
            try:
                token = reencrypt(user.password_encrypted)
                user.password_digest = digest_password(decrypt_password(token))
            except (InvalidToken, ValueError, TypeError):
                failed.append(user.username)
                continue
            user.password_encrypted = token
            done.append(user)
        SmtpUser.objects.bulk_update(done, ["password_encrypted", "password_digest"])
    last = users[-1].pk if users else after_pk
    return last, len(done), failed


def rotate_webhook_secrets() -> tuple[int, list[str]]:
    """Re-encrypt every alert rule's webhook secret; returns (count, failed rule names)."""
    done, failed = 0, []
    with transaction.atomic():
        for rule in AlertRule.objects.select_for_update().exclude(webhook_secret_encrypted=""):
            try:
                rule.webhook_secret_encrypted = reencrypt(rule.webhook_secret_encrypted)
            except (InvalidToken, ValueError, TypeError):
                failed.append(f"alert rule {rule.pk}")
                continue
            rule.save(update_fields=["webhook_secret_encrypted"])
            done += 1
    return done, failed


def rotate_dkim_keys() -> tuple[int, list[str]]:
    """Re-encrypt every DKIM private key still kept; returns (count, failed key names)."""
    done, failed = 0, []
    with transaction.atomic():
        keys = DkimKey.objects.select_for_update().exclude(private_key_encrypted="")
        for key in keys.select_related("sending_domain"):
            try:
                key.private_key_encrypted = reencrypt(key.private_key_encrypted)
            except (InvalidToken, ValueError, TypeError):
                failed.append(f"DKIM key {key.record_name}")
                continue
            key.save(update_fields=["private_key_encrypted"])
            done += 1
    return done, failed


class Command(BaseCommand):
    help = "Re-encrypt every stored SMTP+ password with the newest credential key."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=500)

    def handle(self, *args: Any, **options: Any) -> None:
        size = options["batch_size"]
        if size < 1:
            raise CommandError("--batch-size must be at least 1.")
        after, total, failed = 0, 0, []
        batches = 0
        while True:
            last, count, batch_failed = rotate_batch(after, size)
            if last == after:
                break
            after, total, batches = last, total + count, batches + 1
            failed += batch_failed
        secrets_done, secrets_failed = rotate_webhook_secrets()
        failed += secrets_failed
        dkim_done, dkim_failed = rotate_dkim_keys()
        failed += dkim_failed
        counts = {
            "reencrypted": total, "failed": len(failed), "batches": batches,
            "webhook_secrets": secrets_done, "dkim_keys": dkim_done,
        }
        audit.record(
            "credentials.rotate", account=None, actor=Actor.command_line(), details=counts
        )
        self.stdout.write(json.dumps({**counts, "failed_usernames": failed}))
        if failed:
            raise CommandError(
                f"{len(failed)} password(s) could not be decrypted with any key in "
                "SMTPPLUS_CREDENTIAL_KEYS (was an old key removed too early?): "
                + ", ".join(failed)
            )
