"""Installed plug-ins for tests, made the way pip leaves them: a `*.dist-info` directory whose `entry_points.txt`
declares the `mash_broker.adapters` group. `importlib.metadata` (what adapters.kit.registry reads) finds them on
sys.path / PYTHONPATH like any installed distribution."""

from __future__ import annotations

from pathlib import Path

BROKEN_ENTRY_POINT = "police-broken"
BROKEN_TARGET = "mash_absent_plugin.adapter:ADAPTER"  # a module that is not installed: the load fails


def install_broken_plugin(site: Path) -> Path:
    """A distribution whose only adapter entry point names a module that does not exist; returns the site dir."""
    info = site / "mash_absent_plugin-0.1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: mash-absent-plugin\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(f"[mash_broker.adapters]\n{BROKEN_ENTRY_POINT} = {BROKEN_TARGET}\n")
    return site
