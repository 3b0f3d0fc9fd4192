"""`manage.py makecert`: a self-signed certificate for trying STARTTLS and port 465 locally."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from relay.smtp.tls import write_self_signed


class Command(BaseCommand):
    help = "Write a self-signed development certificate and key for the relay into var/."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", action="append", dest="hosts",
                            help="a name or IP the certificate is for (repeatable); "
                                 "default: RELAY_HOSTNAME, localhost, 127.0.0.1")
        parser.add_argument("--days", type=int, default=365)
        parser.add_argument("--cert", default=str(Path(settings.VAR_DIR) / "relay-cert.pem"))
        parser.add_argument("--key", default=str(Path(settings.VAR_DIR) / "relay-key.pem"))
        parser.add_argument("--force", action="store_true", help="overwrite existing files")

    def handle(self, *args: Any, **options: Any) -> None:
        cert, key = Path(options["cert"]), Path(options["key"])
        if not options["force"] and (cert.exists() or key.exists()):
            raise CommandError(f"{cert} or {key} exists; use --force to replace them")
        hosts = options["hosts"] or list(
            dict.fromkeys([settings.RELAY_HOSTNAME, "localhost", "127.0.0.1"])
        )
        write_self_signed(cert, key, hosts, options["days"])
        self.stdout.write(f"Wrote {cert} and {key} (self-signed, for {', '.join(hosts)}).\n"
                          "Use them with:\n"
                          f"  RELAY_TLS_CERT={cert}\n  RELAY_TLS_KEY={key}")
