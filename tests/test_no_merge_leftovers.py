"""No file of the product carries the conflict markers a merge leaves behind (a style
sheet with them silently loses the rules between the markers)."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

MARKER = re.compile(rb"^(<{7}|>{7})( |$)|^={7}$", re.MULTILINE)
SOURCES = ("smtpplus", "accounts", "relay", "alerts", "templates", "static", "tests", "bench")
TOP_FILES = ("README.md", "pyproject.toml", "run.sh", "test.sh", "manage.py", ".ci/run")


def product_files() -> list[Path]:
    root = Path(settings.BASE_DIR)
    files = [root / name for name in TOP_FILES if (root / name).is_file()]
    for folder in SOURCES:
        files += [p for p in (root / folder).rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files


def test_no_product_file_contains_merge_conflict_markers():
    files = product_files()
    found = []
    for path in files:
        data = path.read_bytes()
        for match in MARKER.finditer(data):
            line = data[:match.start()].count(b"\n") + 1
            found.append(f"{path.relative_to(settings.BASE_DIR)}:{line}")
    assert len(files) > 100
    assert not found, "merge conflict markers left in: " + ", ".join(found)
