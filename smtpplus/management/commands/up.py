"""Start the whole system in one command: database migrations, a first account if none
exists, the console (gunicorn), and the relay with its delivery and alert workers.

Ctrl-C (or SIGTERM) stops every part; if one part dies, the others are stopped too; if
this process dies (even by SIGKILL), every part gets SIGTERM (smtpplus/lifetime.py).

Unless SMTPPLUS_CONSOLE_URL is set, `--bind` becomes the console URL of every part, so
that the links in alert emails and invitations point at the console that was started.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from smtpplus.lifetime import start_child, watch_parent


def console_url_for(bind: str) -> str:
    """SMTPPLUS_CONSOLE_URL when the operator set it (a proxy's https:// address), else
    the address gunicorn is told to listen on."""
    return os.environ.get("SMTPPLUS_CONSOLE_URL") or f"http://{bind}"


class Command(BaseCommand):
    help = "Migrate, create a first account if needed, and run console + relay + workers."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1:8000", help="console address")
        parser.add_argument("--workers", type=int, default=2, help="console worker processes")
        parser.add_argument("--no-relay", action="store_true", help="run the console only")

    def handle(self, *args: Any, **opts: Any) -> None:
        watch_parent()
        console_url = console_url_for(opts["bind"])
        # The children read it at start-up (settings), the alert sender and invitations too.
        os.environ["SMTPPLUS_CONSOLE_URL"] = console_url
        call_command("bootstrap", console_url=console_url)
        python = sys.executable
        manage = str(settings.BASE_DIR / "manage.py")
        parts: dict[str, list[str]] = {
            "console": [
                python, "-m", "gunicorn", "smtpplus.wsgi", "--bind", opts["bind"],
                "--workers", str(opts["workers"]), "--access-logfile", "-",
                "--chdir", str(settings.BASE_DIR),
            ],
        }
        if not opts["no_relay"]:
            parts["relay"] = [python, manage, "runrelay"]
        procs = {name: start_child(cmd) for name, cmd in parts.items()}
        # bootstrap has printed the console's address.
        self.stdout.write(f"SMTP+ is starting: {' and '.join(procs)} (Ctrl-C stops everything)")

        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        failed = ""
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    failed = f"{name} exited with status {proc.returncode}"
                    stopping = True
            time.sleep(0.3)
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 15
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
        if failed:
            self.stderr.write(f"Stopped: {failed}")
            sys.exit(1)
        self.stdout.write("SMTP+ stopped.")
