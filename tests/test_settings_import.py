"""Importing the settings changes nothing on disk; Django's start makes the folders the
defaults point to (the SQLite database's folder, STATIC_ROOT)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from django.conf import settings

from smtpplus.apps import local_dirs, make_local_dirs

PACKAGE = Path(settings.BASE_DIR) / "smtpplus"


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if "__pycache__" not in p.parts}


def test_importing_the_settings_in_an_empty_project_creates_nothing(tmp_path):
    # A copy of the package: BASE_DIR (the folder above it) is then an empty project.
    project, cwd = tmp_path / "project", tmp_path / "cwd"
    shutil.copytree(PACKAGE, project / "smtpplus", ignore=shutil.ignore_patterns("__pycache__"))
    cwd.mkdir()
    before = _tree(tmp_path)
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "STATIC_ROOT", "EMAIL_URL", "RELAY_UPSTREAM")}
    env.update(PYTHONPATH=str(project), PYTHONDONTWRITEBYTECODE="1")
    code = ("import smtpplus.settings as s, pathlib; "
            f"assert pathlib.Path(s.__file__).parent.parent == pathlib.Path({str(project)!r})")
    subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, check=True, timeout=60)
    assert _tree(tmp_path) == before


def test_django_start_makes_the_static_folder_and_var_for_the_default_database(
    settings, tmp_path
):
    settings.STATIC_ROOT = str(tmp_path / "static" / "root")
    assert Path(settings.STATIC_ROOT) in local_dirs()
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # The test database is a file in var/ (see the settings).
        assert Path(settings.VAR_DIR) in local_dirs()
    make_local_dirs()
    assert Path(settings.STATIC_ROOT).is_dir()
