"""The proof cache (broker/policy/proof_cache.py): a proven file is proven once across processes, anything else
proves again, and a tampered entry never lets a broken protocol load (issue 18).

Proof runs are counted by wrapping the real `prove` (it still runs); the in-process memo is emptied before each
load, as a new process would have it."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from broker.policy import ProtocolError, load_protocol
from broker.policy import prove as prove_module
from broker.policy.proof_cache import cache_dir, cache_key
from tests.policy.conftest import base_protocol

INVARIANT = {"id": "hub-no-health-data", "description": "The hub never receives health data from this feed.",
             "subscribers": ["hub"], "shares": {"classifications": ["health"]}}


def _write(path: Path, *, broken: bool = False, title: str = "Test protocol") -> Path:
    data = base_protocol()
    data["protocol"]["title"] = title
    data["invariants"] = [INVARIANT]
    if broken:  # the hub's rule starts releasing health data: the invariant is broken
        data["rules"][0]["fields"][0]["classifications"].append("health")
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Callable[[Path], Any]:
    """Load a protocol as a fresh process would (no memo) with the cache in tmp_path/cache; `.count` proofs run."""
    monkeypatch.setenv("MASH_PROOF_CACHE", str(tmp_path / "cache"))
    real = prove_module.prove
    counted: list[int] = []

    def counting(*args: Any, **kwargs: Any) -> Any:
        counted.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(prove_module, "prove", counting)

    def load(path: Path) -> Any:
        monkeypatch.setattr(prove_module, "_PROOFS", {})
        return load_protocol(path)

    load.count = lambda: len(counted)  # type: ignore[attr-defined]
    return load


def _entry(tmp_path: Path, protocol_file: Path) -> Path:
    return tmp_path / "cache" / f"{cache_key(protocol_file.read_bytes())}.json"


def test_a_second_start_does_not_prove_again(runs: Any, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.yaml")
    runs(good)
    assert runs.count() == 1
    entry = _entry(tmp_path, good)
    assert entry.is_file() and entry.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    assert orjson.loads(entry.read_bytes())["verdict"] == "proven"
    protocol = runs(good)
    assert runs.count() == 1  # the entry was trusted: no second proof
    assert protocol.invariants[0].id == "hub-no-health-data"
    assert not list((tmp_path / "cache").glob(".entry-*"))  # no temporary file left behind


def test_changing_one_byte_proves_again(runs: Any, tmp_path: Path) -> None:
    good = _write(tmp_path / "good.yaml")
    runs(good)
    _write(good, title="Test protocoL")
    runs(good)
    assert runs.count() == 2
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2


def test_a_refused_protocol_is_never_cached(runs: Any, tmp_path: Path) -> None:
    broken = _write(tmp_path / "broken.yaml", broken=True)
    for expected in (1, 2):
        with pytest.raises(ProtocolError, match="hub-no-health-data"):
            runs(broken)
        assert runs.count() == expected  # proven (and refused) at every start
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_a_proven_entry_moved_to_a_broken_protocols_key_is_not_trusted(runs: Any, tmp_path: Path) -> None:
    """The attacker copies the good file's entry to the name the broken file's key gives."""
    good, broken = _write(tmp_path / "good.yaml"), _write(tmp_path / "broken.yaml", broken=True)
    runs(good)
    shutil.copy(_entry(tmp_path, good), _entry(tmp_path, broken))
    os.chmod(_entry(tmp_path, broken), 0o600)
    with pytest.raises(ProtocolError, match="hub-no-health-data"):
        runs(broken)
    assert runs.count() == 2


def test_an_entry_forged_for_a_broken_protocols_key_by_someone_else_is_not_trusted(runs: Any, tmp_path: Path
                                                                                    ) -> None:
    """The attacker writes a complete, well-formed "proven" entry for the broken file's key, but not as the broker's
    own user: the folder (or the entry) is writable by the group, as a shared or poisoned cache would be."""
    good, broken = _write(tmp_path / "good.yaml"), _write(tmp_path / "broken.yaml", broken=True)
    runs(good)
    forged = orjson.loads(_entry(tmp_path, good).read_bytes())
    forged["key"] = cache_key(broken.read_bytes())
    target = _entry(tmp_path, broken)
    target.write_bytes(orjson.dumps(forged))
    for folder_mode, entry_mode in ((0o770, 0o600), (0o700, 0o660), (0o700, 0o606)):
        os.chmod(tmp_path / "cache", folder_mode)
        os.chmod(target, entry_mode)
        with pytest.raises(ProtocolError, match="hub-no-health-data"):
            runs(broken)
    assert runs.count() == 4


@pytest.mark.parametrize("tamper", [
    lambda e: b"{not json",
    lambda e: orjson.dumps({**orjson.loads(e), "verdict": "broken"}),
    lambda e: orjson.dumps({**orjson.loads(e), "format": 99}),
    lambda e: orjson.dumps({**orjson.loads(e), "invariants": []}),
    lambda e: orjson.dumps({**orjson.loads(e), "points": "many"}),
    lambda e: orjson.dumps([orjson.loads(e)]),
])
def test_a_corrupt_or_foreign_entry_is_ignored_and_the_proof_runs(runs: Any, tmp_path: Path, tamper: Any) -> None:
    good = _write(tmp_path / "good.yaml")
    runs(good)
    entry = _entry(tmp_path, good)
    entry.write_bytes(tamper(entry.read_bytes()))
    runs(good)
    assert runs.count() == 2
    assert orjson.loads(entry.read_bytes())["verdict"] == "proven"  # written again by the proof that ran
    runs(good)
    assert runs.count() == 2


def test_off_disables_the_cache(monkeypatch: pytest.MonkeyPatch, runs: Any, tmp_path: Path) -> None:
    monkeypatch.setenv("MASH_PROOF_CACHE", "off")
    assert cache_dir() is None
    good = _write(tmp_path / "good.yaml")
    runs(good)
    runs(good)
    assert runs.count() == 2 and not (tmp_path / "cache").exists()


def test_the_default_folder_is_the_users_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MASH_PROOF_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "mash-broker" / "proofs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "mash-broker" / "proofs"


def test_the_key_binds_the_bytes_the_code_and_the_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Another broker version, or other deciding code, finds no entry made by this one."""
    import broker
    from broker.policy import proof_cache

    text = _write(tmp_path / "good.yaml").read_bytes()
    key = cache_key(text)
    assert key != cache_key(text + b"\n")
    monkeypatch.setattr(broker, "__version__", "0.0.0-other")
    assert cache_key(text) != key
    monkeypatch.undo()
    extra = tmp_path / "engine.py"
    extra.write_text("# another engine\n", encoding="utf-8")
    real = proof_cache._sources
    monkeypatch.setattr(proof_cache, "_sources", lambda: [*real(), extra])
    proof_cache.code_digest.cache_clear()
    try:
        assert cache_key(text) != key
    finally:
        monkeypatch.undo()
        proof_cache.code_digest.cache_clear()
    assert cache_key(text) == key
    assert "policy/prove.py" in {f"{p.parent.name}/{p.name}" for p in proof_cache._sources()}
    assert "schemas/protocol.schema.json" in {f"{p.parent.name}/{p.name}" for p in proof_cache._sources()}
