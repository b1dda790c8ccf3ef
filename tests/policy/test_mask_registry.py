"""Mask kinds live in one place, broker/policy/masks.py MASKS; every other place that lists them is checked here.

The README's "Adding a mask kind" guide names the files a new mask touches. These tests hold the guide true: each
place that lists the kinds equals the registry, and no file outside the guide's list carries its own copy.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from broker.policy import MASK_KINDS, PolicyError
from broker.policy.masks import MASKS, apply_mask

ROOT = Path(__file__).resolve().parents[2]
KINDS = list(MASKS)


def guide_files() -> list[str]:
    """The files the README's "Adding a mask kind" section names, in backticks."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### Adding a mask kind", 1)[1].split("\n### ", 1)[0].split("\n## ", 1)[0]
    return sorted(set(re.findall(r"`((?:broker|schemas|tests|adapters)/[\w./-]+)`", section)))


def schema_enum() -> list[str]:
    return json.loads((ROOT / "schemas" / "protocol.schema.json").read_text())["$defs"]["mask_kind"]["enum"]


def readme_table() -> list[str]:
    text = (ROOT / "broker" / "policy" / "README.md").read_text()
    table = text.split("### Masks", 1)[1].split("\n\n", 2)[1]
    return re.findall(r"^\| `(\w+)` \|", table, re.MULTILINE)


# Every copy of the list that cannot import the registry, and how to read it: the places a new kind must be added.
COPIES = {"schemas/protocol.schema.json": schema_enum, "broker/policy/README.md": readme_table}


def drifted(kinds: list[str]) -> set[str]:
    return {place for place, read in COPIES.items() if read() != kinds}


def test_every_copy_equals_the_registry() -> None:
    assert drifted(KINDS) == set()


def test_a_new_kind_in_the_registry_names_exactly_the_guides_files_to_extend() -> None:
    """What a newcomer adding `first_letter` to MASKS is told: the registry-driven copies, all in the guide."""
    assert drifted([*KINDS, "first_letter"]) == set(COPIES)
    assert set(COPIES) | {"broker/policy/masks.py"} <= set(guide_files())


def test_mask_kinds_for_callers_is_derived_from_the_registry() -> None:
    assert {kind: mask.effect for kind, mask in MASKS.items()} == MASK_KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_every_registered_kind_applies_and_never_shows_more(kind: str) -> None:
    masked = apply_mask(kind, "Testchild Example", key=b"k" * 32, subscriber="mash_hub", event_date="2026-01-01")
    assert isinstance(masked, str) and masked != "Testchild Example"


def test_an_unregistered_kind_is_refused() -> None:
    with pytest.raises(PolicyError, match="unknown mask kind"):
        apply_mask("reverse", "x", key=b"k" * 32, subscriber="mash_hub", event_date=None)


def test_the_guide_names_real_files_and_the_registry() -> None:
    files = guide_files()
    assert "broker/policy/masks.py" in files
    assert all((ROOT / f).is_file() for f in files), files


def test_no_file_outside_the_guide_keeps_its_own_list_of_mask_kinds() -> None:
    """A file naming four or more kinds is a list of them; only the registry-driven places the guide names may."""
    allowed = set(guide_files())
    copies = []
    for path in [*ROOT.glob("broker/**/*"), *ROOT.glob("schemas/**/*"), *ROOT.glob("tests/**/*"),
                 *ROOT.glob("adapters/**/*"), *ROOT.glob("deploy/**/*"), ROOT / "README.md"]:
        if not path.is_file() or path.suffix not in (".py", ".json", ".md", ".yaml", ".yml", ".html", ".js"):
            continue
        rel = path.relative_to(ROOT).as_posix()
        # protocol files use masks in their rules (data, not a list of kinds); this file checks the lists
        if rel == "tests/policy/test_mask_registry.py" or rel.startswith("deploy/protocols/") or "/fixtures/" in rel:
            continue
        text = path.read_text(errors="replace")
        if sum(bool(re.search(rf"\b{kind}\b", text)) for kind in KINDS if kind not in ("redact", "partial")) >= 3:
            copies.append(rel)
    assert sorted(set(copies) - allowed) == [], "mask kinds listed outside the registry and the guide's files"
