"""Fixtures for the deployment tests: paths, YAML documents of the compose file and the Kubernetes manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "compose" / "compose.yaml"
SAMPLE_PROTOCOL = DEPLOY / "protocols" / "sample-partnership.yaml"


def kustomize_resources(directory: Path) -> list[Path]:
    """Files the kustomization lists, followed into nested kustomizations, in order."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    files: list[Path] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        files += kustomize_resources(path) if path.is_dir() else [path]
    return files


@pytest.fixture(scope="session")
def k8s_documents() -> list[tuple[Path, dict]]:
    docs = []
    for path in kustomize_resources(K8S):
        docs += [(path, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@pytest.fixture(scope="session")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())
