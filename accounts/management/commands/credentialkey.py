"""`manage.py credentialkey`: print a new key for SMTPPLUS_CREDENTIAL_KEYS."""

from __future__ import annotations

from typing import Any

from cryptography.fernet import Fernet
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = (
        "Print a new Fernet key. To rotate: put it first in SMTPPLUS_CREDENTIAL_KEYS "
        "(keep the old keys after it), restart, then run `manage.py rotatecredentials`."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(Fernet.generate_key().decode("ascii"))
