"""Node.js packages the tests read mail with (mailparser, mailauth): installed by npm
into a folder of the virtualenv on first use, pinned, and a clear failure — never a
skip — when Node.js or npm is missing."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest


def npm_package(spec: str, folder: Path, what: str) -> Path:
    """The node binary, with `spec` ("name@version") installed under `folder`."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail(f"{what} need Node.js and npm (Debian: apt-get install nodejs npm; "
                    "test.sh installs them when run as root)")
    name, _, wanted = spec.rpartition("@")
    manifest = folder / "node_modules" / name / "package.json"
    if not manifest.exists() or json.loads(manifest.read_text())["version"] != wanted:
        folder.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [npm, "install", "--prefix", str(folder), "--no-audit", "--no-fund", "--no-save",
             spec],
            capture_output=True, text=True, timeout=300,
        )
        if done.returncode != 0:
            pytest.fail(f"npm install {spec} failed:\n{done.stderr}")
    return Path(node)
