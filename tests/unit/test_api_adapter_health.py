"""/readyz's adapters check (issue 23): a plug-in installed but not loaded makes the service degraded, named by its
entry point only (the endpoint is public: no module path, no traceback)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.kit import registry
from broker.api.health import adapter_health
from tests.adapters.plugins import BROKEN_ENTRY_POINT, install_broken_plugin


@pytest.fixture()
def fresh_discovery() -> Iterator[None]:
    registry._discover.cache_clear()  # discovery runs once per process: make this test's sys.path the one read
    yield
    registry._discover.cache_clear()


def test_readyz_names_a_broken_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           fresh_discovery: None) -> None:
    assert adapter_health() == "ok"
    monkeypatch.syspath_prepend(str(install_broken_plugin(tmp_path / "site")))
    registry._discover.cache_clear()
    answer = adapter_health()
    assert answer == f"degraded: adapter entry points not loaded: {BROKEN_ENTRY_POINT} (see mash-broker doctor)"
    assert "mash_absent_plugin" not in answer
    assert {a.name for a in registry.all_adapters()} >= {"police.pole", "health.fhir"}  # the others still load
