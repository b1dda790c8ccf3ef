"""Protocol variants of the end-to-end fixture for delivery tests (which send broker.bench's fictitious children):
optionally the same rule for both subscribers, so one subscriber's fault can be seen not to stop the other."""

from __future__ import annotations

from pathlib import Path

import yaml

from broker.bench.records import fhir_patient
from tests.integration.service import FIXTURES


def health_protocol(folder: Path, *, both_subscribers: bool = False) -> Path:
    spec = yaml.safe_load((FIXTURES / "e2e-protocol.yaml").read_text())
    for rule in spec["rules"]:
        if "dpa2018_sch1_para18" in rule.get("lawful_basis", ()):  # para 18 is for children (or adults at risk)
            rule.setdefault("conditions", {})["subject_under_18"] = True  # broker.bench's children fit
            rule.setdefault("para18_reason", "consent_would_prejudice_protection")
        if both_subscribers:
            rule["subscribers"] = [s["name"] for s in spec["subscribers"]]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("e2e-both.yaml" if both_subscribers else "e2e-health.yaml")
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def child(n: int) -> bytes:
    """A fictitious child's FHIR Patient (application/fhir+json); each n is another child and another event."""
    return fhir_patient(n)
