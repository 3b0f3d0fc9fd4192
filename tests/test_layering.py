"""The layering of the code (pyproject's [tool.importlinter] contracts) holds: a new
import cycle or an import in the wrong direction fails the test suite."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_goes_down_the_layers():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0 and ", 0 broken." in result.stdout, result.stdout + result.stderr


def test_every_sub_package_of_the_accounts_app_has_a_contract():
    """A new folder in accounts/ states which way its imports go (a contract names it),
    and the modules grouped into the sub-packages are not left behind at the top."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    named = set()
    for contract in config["tool"]["importlinter"]["contracts"]:
        for key in ("source_modules", "forbidden_modules", "layers"):
            for entry in contract.get(key, []):
                named.update(part.strip() for part in entry.split("|"))
    app = ROOT / "accounts"
    not_code = {"migrations", "management", "templatetags"}
    packages = {
        f"accounts.{p.parent.name}" for p in app.glob("*/__init__.py") if p.parent.name not in not_code
    }
    assert {"accounts.actions", "accounts.api", "accounts.domains", "accounts.views"} <= packages
    assert not {
        p for p in packages if p not in named and not any(n.startswith(p + ".") for n in named)
    }
    flat = {p.stem for p in app.glob("*.py")}
    assert not flat & {p.rsplit(".", 1)[1] for p in packages}
    assert not flat & {"api_domains", "apiauth", "apikeys", "apiratelimit", "dkim",
                       "dmarchealth", "domainhealth", "findings", "spfhealth", "spfrecord"}
