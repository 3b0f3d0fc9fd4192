"""The layering of the code (pyproject's [tool.importlinter] contracts) holds: a new
import cycle or an import in the wrong direction fails the test suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_goes_down_the_layers():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and ", 0 broken." in result.stdout, result.stdout + result.stderr
