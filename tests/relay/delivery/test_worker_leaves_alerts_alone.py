"""The delivery worker only delivers: alerts are the `sendalerts` process's job, and no
relay module reaches the alerts app, not even by a module name in a string (which the
layering contracts could not see)."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

RELAY = Path(settings.BASE_DIR) / "relay"


def test_no_relay_module_names_the_alerts_app():
    pattern = re.compile(r"""(?:import\s+alerts\b|from\s+alerts\b|["']alerts\.)""")
    offenders = [
        str(path.relative_to(RELAY.parent))
        for path in RELAY.rglob("*.py")
        if "migrations" not in path.parts and pattern.search(path.read_text())
    ]
    assert offenders == []
