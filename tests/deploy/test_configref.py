"""The configuration reference is generated from Settings and the committed copy matches a fresh render."""

from __future__ import annotations

import subprocess
import sys

from broker.config import Settings
from broker.ops.configref import render
from tests.deploy.conftest import DEPLOY


def test_every_setting_is_documented_with_its_environment_variable() -> None:
    text = render()
    for name, field in Settings.model_fields.items():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}` |"))
        assert field.description and field.description.split("<")[0].strip()[:20] in row
    assert "`KAFKA_BOOTSTRAP_SERVERS`, `MASH_KAFKA_BOOTSTRAP_SERVERS`" in text
    assert "| `port` | `MASH_PORT` | int | `8080` |" in text
    assert "| `dev_mode` | `MASH_DEV_MODE` | bool | false |" in text


def test_committed_reference_matches_the_code() -> None:
    committed = (DEPLOY / "configuration.md").read_text()
    assert committed == render(), "deploy/configuration.md is stale: mash-broker config reference > " \
                                  "deploy/configuration.md"


def test_cli_prints_the_reference() -> None:
    proc = subprocess.run([sys.executable, "-m", "broker.cli.main", "config", "reference"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == render()
