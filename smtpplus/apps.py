"""The project's app config: when Django starts, the deploy checks are registered and the
local folders the settings point to are made.

The folders are made here, not in the settings: importing settings must change nothing on
disk (a linter, a read-only image or a tool that only reads the configuration imports
them too), while every process that opens the database or serves static files starts
Django first.
"""

from __future__ import annotations

import logging
from pathlib import Path

from django.apps import AppConfig
from django.conf import settings

from smtpplus import checks  # noqa: F401  (registers the deploy checks)

log = logging.getLogger(__name__)


def local_dirs() -> list[Path]:
    """The folders that must exist before first use: STATIC_ROOT (WhiteNoise warns on
    every start when it is missing before `collectstatic`) and var/ when the SQLite
    database lives there, as by default (SQLite creates the file, not its folder).

    A database path the operator chose is left as it is: a folder missing there is a
    mistake to report ("database unavailable"), not to paper over.
    """
    dirs = [Path(settings.STATIC_ROOT)]
    database = settings.DATABASES["default"]
    var = Path(settings.VAR_DIR)
    if database["ENGINE"].endswith("sqlite3"):
        names = [database["NAME"], database.get("TEST", {}).get("NAME")]
        if any(name and Path(name).parent == var for name in names):
            dirs.append(var)
    return dirs


def make_local_dirs() -> None:
    for folder in local_dirs():
        if folder.is_dir():
            continue
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # the error that follows (database, static files) says more
            log.warning("could not create %s: %s", folder, exc)


class SmtpPlusConfig(AppConfig):
    name = "smtpplus"
    verbose_name = "SMTP+"

    def ready(self) -> None:
        make_local_dirs()
