"""The README's "Adding an agency's adapter" guide stays true: every file it names exists for every agency, and the
entry-point group it names is the one the broker discovers adapters by. A newcomer who follows it touches those
files and no others (checked by hand in session 7: a CSV health adapter, 5 files; the one other file it broke,
tests/adapters/test_input_limits.py, assumed no health adapter lists text/csv and was fixed)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from adapters.kit.registry import AGENCIES, GROUP

ROOT = Path(__file__).resolve().parents[2]


def guide() -> str:
    text = (ROOT / "README.md").read_text()
    return text.split("### Adding an agency's adapter", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def named_paths(section: str) -> list[str]:
    return sorted(set(re.findall(r"`((?:adapters|tests|schemas|deploy|broker)/[\w./<>-]+|pyproject\.toml)`", section)))


def test_every_file_the_guide_names_exists_for_every_agency() -> None:
    paths = named_paths(guide())
    assert "pyproject.toml" in paths and "adapters/README.md" in paths
    missing = []
    for path in paths:
        if "<format>" in path:  # the new files the newcomer writes: their folder must be there
            path = path.rsplit("/", 1)[0]
        for agency in AGENCIES if "<agency>" in path else [None]:
            concrete = path.replace("<agency>", agency or "")
            if not (ROOT / concrete).exists():
                missing.append(concrete)
    assert missing == []


def test_the_guide_names_the_entry_point_group_the_broker_reads() -> None:
    assert f'[project.entry-points."{GROUP}"]' in guide()
    assert GROUP in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
