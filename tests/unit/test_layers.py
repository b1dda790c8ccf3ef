"""The layer contracts in pyproject.toml ([tool.importlinter]) hold, and they would catch the arrows issue 20 found.

`lint-imports` checks the real tree. The other tests take the same layers from pyproject.toml and add one import
the code used to have (or that a careless change would add) to the import graph, to show the contract breaks on it:
a contract that can never fail proves nothing.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import tomllib
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {c["id"]: c for c in CONFIG["contracts"]}


def test_every_layer_contract_is_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in done.stdout


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*CONFIG["root_packages"], exclude_type_checking_imports=True, cache_dir=None)


def _layers() -> list[grimp.Layer]:
    out = []
    for spec in CONTRACTS["layers"]["layers"]:
        independent = ":" not in spec
        names = [n.strip() for n in spec.replace(":", "|").split("|")]
        out.append(grimp.Layer(*names, independent=independent))
    return out


def _illegal(graph: grimp.ImportGraph) -> set[tuple[str, str]]:
    for line in CONTRACTS["layers"].get("ignore_imports", []):
        importer, imported = (part.strip() for part in line.split("->"))
        if graph.direct_import_exists(importer=importer, imported=imported):
            graph.remove_import(importer=importer, imported=imported)
    return {(d.importer, d.imported) for d in graph.find_illegal_dependencies_for_layers(layers=_layers())}


def test_the_layers_as_configured_hold_on_the_graph(graph: grimp.ImportGraph) -> None:
    assert _illegal(copy.deepcopy(graph)) == set()


@pytest.mark.parametrize(("importer", "imported"), [
    ("broker.service.runtime", "broker.api.auth"),  # issue 20: the service reached up for ApiKeyStore
    ("broker.pipeline.share", "broker.service.share"),  # the core reaching into the shell
    ("broker.policy.engine", "broker.stores.consent"),  # a decision reading a register itself
    ("adapters.social_care.cin", "broker.service.runtime"),  # an adapter reaching for the shell's settings
])
def test_an_upward_import_breaks_the_layers(graph: grimp.ImportGraph, importer: str, imported: str) -> None:
    g = copy.deepcopy(graph)
    g.add_import(importer=importer, imported=imported)
    assert _illegal(g), f"{importer} -> {imported} should break the layers contract"


def test_service_api_keys_come_from_below() -> None:
    from broker.access.apikeys import ApiKeyStore
    from broker.api.auth import ApiKeyStore as reexported

    assert reexported is ApiKeyStore  # one class; the HTTP layer only re-exports it


def test_a_service_cycle_through_runtime_would_break_the_acyclic_contract(graph: grimp.ImportGraph) -> None:
    """runtime imports the workers it starts; a worker importing runtime for real (not under TYPE_CHECKING)
    closes the circle issue 20 named."""
    g = copy.deepcopy(graph)
    assert not g.chain_exists(importer="broker.service.share", imported="broker.service.runtime")
    g.add_import(importer="broker.service.share", imported="broker.service.runtime")
    assert g.chain_exists(importer="broker.service.runtime", imported="broker.service.share")


@pytest.mark.parametrize("worker", ["broker.service.share", "broker.service.held", "broker.service.audit_indexer",
                                    "broker.service.erasure", "broker.service.decisions"])
@pytest.mark.parametrize("top", ["broker.service.runtime", "broker.service.root"])
def test_a_worker_reaching_up_for_the_runtime_or_the_root_closes_a_cycle(graph: grimp.ImportGraph, worker: str,
                                                                          top: str) -> None:
    """Issue 20: workers are given narrow Protocols (broker/service/ports.py), never the module that builds them.
    The composition root builds the Runtime, the Runtime starts the workers: an import back up is a circle, which
    the acyclic contract refuses."""
    g = copy.deepcopy(graph)
    assert not g.chain_exists(importer=worker, imported=top)
    g.add_import(importer=worker, imported=top)
    assert g.chain_exists(importer=top, imported=worker) and g.chain_exists(importer=worker, imported=top)


def _reaching_the_root(graph: grimp.ImportGraph) -> set[tuple[str, str]]:
    """What the root-on-top contract finds: a service module with a chain to the root or the Runtime."""
    contract = CONTRACTS["root-on-top"]
    for line in contract["ignore_imports"]:
        importer, imported = (part.strip() for part in line.split("->"))
        graph.remove_import(importer=importer, imported=imported)
    forbidden = contract["forbidden_modules"]
    sources = graph.find_children("broker.service") - set(forbidden)
    return {(s, f) for s in sources for f in forbidden if graph.chain_exists(importer=s, imported=f)}


def test_no_service_module_reaches_the_root(graph: grimp.ImportGraph) -> None:
    assert _reaching_the_root(copy.deepcopy(graph)) == set()


def test_a_shell_reaching_for_the_runtime_breaks_root_on_top(graph: grimp.ImportGraph) -> None:
    g = copy.deepcopy(graph)
    g.add_import(importer="broker.service.intake", imported="broker.service.runtime")  # intake is no worker: no cycle
    assert ("broker.service.intake", "broker.service.runtime") in _reaching_the_root(g)
