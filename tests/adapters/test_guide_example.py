"""The adapter guide's worked example runs as written (issue 23): its files are taken from adapters/README.md, built
into a package, pip-installed into a directory on PYTHONPATH (the broker's environment, as the guide says), and then
its own test, `mash-broker adapters --json` and `mash-broker convert` run exactly as the guide shows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.adapters.plugins import BROKEN_ENTRY_POINT, BROKEN_TARGET, install_broken_plugin

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "adapters" / "README.md"
FILE_BLOCK = re.compile(r"<!-- example-file: (\S+) -->\n```[a-z]*\n(.*?)```", re.DOTALL)


def example_files() -> dict[str, str]:
    files = dict(FILE_BLOCK.findall(GUIDE.read_text()))
    assert "mash-police-csv/pyproject.toml" in files and "mash-police-csv/src/mash_police_csv/adapter.py" in files
    return files


def run(args: list[str], cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(site), "COLUMNS": "80"}
    for name in ("MASH_LINKAGE_KEY", "MASH_DATA_DIR"):
        env.pop(name, None)
    env["MASH_DATA_DIR"] = str(cwd / "data")  # no linkage key there: convert uses an ephemeral one, as it says
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("guide")
    for name, text in example_files().items():
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_text(text)
    site = work / "site"
    # The guide's `pip install ./mash-police-csv`, kept offline: the build backend (hatchling) comes from the dev
    # extra instead of the index, and the package lands in a directory of its own instead of the shared .venv.
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                           "--target", str(site), "./mash-police-csv"], cwd=work, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return work, site


def test_the_packages_own_test_passes_with_the_wheels_helper(installed: tuple[Path, Path]) -> None:
    work, site = installed
    # -p no:cloudcoil as in pyproject's addopts: a plug-in of this repository's dev extra that breaks pytest outside
    # it (a broker's own environment has no dev extra); the rest is the guide's command.
    proc = run(["-m", "pytest", "mash-police-csv/tests", "-q", "-p", "no:cacheprovider", "-p", "no:cloudcoil"],
               work, site)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 passed" in proc.stdout


def test_the_installed_plugin_is_listed_and_converts_a_record(installed: tuple[Path, Path]) -> None:
    work, site = installed
    listing = run(["-m", "broker.cli.main", "adapters", "--json"], work, site)
    assert listing.returncode == 0, listing.stdout + listing.stderr
    found = {a["name"]: a for a in json.loads(listing.stdout)["adapters"]}
    assert found["police.csv_incidents"]["content_types"] == ["text/csv"]
    assert json.loads(listing.stdout)["not_loaded"] == []

    proc = run(["-m", "broker.cli.main", "convert", "--agency", "police", "mash-police-csv/incidents.csv"], work, site)
    [line] = proc.stdout.splitlines()
    event = json.loads(line)
    assert event["event_type"] == "police.incident_child_present"
    assert event["source"]["format"] == "incident-csv" and event["subject"]["linkage"]["token"]
    assert "mash-police-csv/incidents.csv: line 3: incident_reference: missing" in proc.stderr
    assert proc.returncode == 1  # a rejection is an exit of its own, as for every adapter


def test_a_csv_with_another_header_is_told_which_header_is_expected(installed: tuple[Path, Path]) -> None:
    work, site = installed
    (work / "other.csv").write_text("force,ref,date\n99,999000124,2026-03-03\n")
    proc = run(["-m", "broker.cli.main", "convert", "--agency", "police", "other.csv"], work, site)
    assert ("the body is CSV but its header is not a known police file: expected a header row force_code,"
            "incident_reference,occurred_on,given_name,family_name,date_of_birth (police.csv_incidents)") in proc.stderr
    assert "999000124" not in proc.stderr


def test_the_table_is_not_cut_at_80_columns_without_a_terminal(installed: tuple[Path, Path]) -> None:
    work, site = installed
    proc = run(["-m", "broker.cli.main", "adapters"], work, site)
    assert proc.returncode == 0, proc.stderr
    assert "police.csv_incidents" in proc.stdout and "social_care.ssda903" in proc.stdout  # whole names, no "…"


def test_a_broken_entry_point_is_reported_by_adapters(tmp_path: Path) -> None:
    site = install_broken_plugin(tmp_path / "site")
    proc = run(["-m", "broker.cli.main", "adapters", "--json"], tmp_path, site)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    [error] = json.loads(proc.stdout)["not_loaded"]
    assert error == f"{BROKEN_ENTRY_POINT}: cannot load {BROKEN_TARGET} (ModuleNotFoundError)"
