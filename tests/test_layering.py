"""The layering of the code (pyproject's [tool.importlinter] contracts) holds, and no
module imports itself through others: a new import cycle or an import in the wrong
direction fails the test suite."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("smtpplus", "accounts", "relay", "alerts")

# Runtime import cycles that have to stay, each with the start-up cycle its in-function
# import breaks. None does: keep it that way.
ALLOWED_CYCLES: list[frozenset[str]] = []


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


def contract_names(key: str) -> set[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    named = set()
    for contract in config["tool"]["importlinter"]["contracts"]:
        for entry in contract.get(key, []):
            named.update(part.strip() for part in entry.split("|"))
    return named


def test_every_module_at_the_top_of_the_relay_has_a_layer():
    """A new module or folder in relay/ says where it sits among the relay's layers."""
    app = ROOT / "relay"
    top = {f"relay.{p.stem}" for p in app.glob("*.py") if p.stem not in {"__init__", "apps"}}
    top |= {f"relay.{p.parent.name}" for p in app.glob("*/__init__.py")
            if p.parent.name != "migrations"}
    assert {"relay.api", "relay.sendapi", "relay.smtp", "relay.console"} <= top
    assert top - contract_names("layers") == set()


def import_cycles(graph: grimp.ImportGraph) -> list[frozenset[str]]:
    """The groups of modules that import each other, directly or through others
    (strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            for other in imported:
                if other not in index:
                    index[other] = low[other] = len(index)
                    stack.append(other)
                    on_stack.add(other)
                    work.append((other, iter(sorted(graph.find_modules_directly_imported_by(other)))))
                    break
                if other in on_stack:
                    low[module] = min(low[module], index[other])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    group = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.add(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        cycles.append(frozenset(group))
    return cycles


def describe(graph: grimp.ImportGraph, cycle: frozenset[str]) -> str:
    lines = []
    for importer in sorted(cycle):
        for imported in sorted(graph.find_modules_directly_imported_by(importer) & cycle):
            for detail in graph.get_import_details(importer=importer, imported=imported):
                lines.append(f"  {importer}:{detail['line_number']} {detail['line_contents']}")
    return "\n".join(lines)


def test_the_cycle_finder_sees_a_cycle_through_three_modules_and_nothing_else():
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"),
                               ("p.c", "p.d"), ("p.d", "p.e"), ("p.e", "p.e2")]:
        graph.add_import(importer=importer, imported=imported)
    assert import_cycles(graph) == [frozenset({"p.a", "p.b", "p.c"})]


def test_no_module_imports_itself_through_others_at_run_time():
    """Every import counts, in a function too (it runs when the function is first
    called); only imports under TYPE_CHECKING, which never run, are left out."""
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)
    cycles = [c for c in import_cycles(graph) if c not in ALLOWED_CYCLES]
    assert not cycles, "\n\n".join(
        "modules importing each other:\n" + describe(graph, c) for c in cycles)
