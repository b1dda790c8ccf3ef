"""Each fact issue 20 found written in several places now lives in one; the copies Python cannot import (JSON
schemas, README tables, typed request models) are checked against it here. A failure names the copy to fix."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import get_args

import pytest

from adapters.kit.events import DEFAULT_LAWFUL_BASIS
from adapters.kit.interface import AdaptContext, AdapterSettings
from adapters.kit.registry import AGENCIES, all_adapters
from broker.policy.codes import CONSENT_STATUSES
from broker.policy.consent import KINDS, OBJECTION_STATES

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "schemas"


def schema(name: str) -> dict:
    return json.loads((SCHEMAS / name).read_text())


# --- agencies: adapters/kit/registry.py AGENCIES ---------------------------------------------------------------------
def test_the_schemas_name_exactly_the_agencies() -> None:
    event = schema("safeguarding-event.schema.json")["properties"]["source"]["properties"]
    # broker: the broker's own notices (person.erased, the hub watch's events); mash_hub: the hub's own decisions and
    # actions (schema 1.4.0). Neither has an adapter, so neither is in AGENCIES nor a protocol partner's agency.
    assert event["agency"]["enum"] == [*AGENCIES, "broker", "mash_hub"]
    assert schema("protocol.schema.json")["$defs"]["agency"]["enum"] == list(AGENCIES)
    assert schema("audit-record.schema.json")["properties"]["agency"]["enum"] == [*AGENCIES, "mash_hub", "unknown"]


def test_every_agency_has_a_default_lawful_basis_and_nothing_else_does() -> None:
    assert set(DEFAULT_LAWFUL_BASIS) == set(AGENCIES)


def test_no_module_keeps_its_own_agency_list() -> None:
    """A tuple, list or set literal of the four agency names in the code, anywhere but the registry, is a copy
    (tests may spell them out: a test's expectation is its own)."""
    copies = []
    for path in [*ROOT.glob("broker/**/*.py"), *ROOT.glob("adapters/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set) and \
                    {e.value for e in node.elts if isinstance(e, ast.Constant)} >= set(AGENCIES):
                copies.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert [c for c in copies if not c.startswith("adapters/kit/registry.py:")] == []


def test_the_adapters_readme_table_is_the_installed_adapters() -> None:
    table = (ROOT / "adapters" / "README.md").read_text().split("## Writing one", 1)[0]
    listed = re.findall(r"^\| `([a-z0-9_]+\.[a-z0-9_]+)` \| (\w+) \|", table, re.MULTILINE)
    assert sorted(listed) == sorted((a.name, a.agency) for a in all_adapters())
    assert {agency for _, agency in listed} <= set(AGENCIES)


# --- consent statuses: broker/policy/codes.py CONSENT_STATUSES --------------------------------------------------------
def test_consent_statuses_and_kinds_everywhere_are_the_codes() -> None:
    from broker.api.admin import ConsentBody, ConsentRecordBody

    event = schema("safeguarding-event.schema.json")["properties"]
    assert event["consent"]["properties"]["status"]["enum"] == list(CONSENT_STATUSES)
    protocol = schema("protocol.schema.json")["$defs"]
    assert protocol["consent_status"]["enum"] == list(CONSENT_STATUSES)
    status = ConsentBody.model_fields["status"].annotation
    assert get_args(get_args(status)[0]) == CONSENT_STATUSES
    assert get_args(ConsentRecordBody.model_fields["state"].annotation) == (*CONSENT_STATUSES, *OBJECTION_STATES)
    assert get_args(ConsentRecordBody.model_fields["kind"].annotation) == KINDS


# --- adapter settings: read once, given in the context --------------------------------------------------------------
def test_no_adapter_reads_the_environment() -> None:
    offenders = [str(p.relative_to(ROOT)) for p in ROOT.glob("adapters/**/*.py")
                 if re.search(r"\bos\.environ\b|\bgetenv\(", p.read_text())]
    assert offenders == []


def test_the_cin_xsd_setting_reaches_the_adapter_through_its_context(external_cases: Path) -> None:
    from adapters.social_care.cin import ADAPTER
    from broker.adapter_settings import adapter_settings
    from broker.config import Settings

    adapting = adapter_settings(Settings(cin_xsd_dir=external_cases / "social_care"))
    assert sorted(adapting.cin_schemas) == [2022, 2024]
    assert adapter_settings(Settings()).cin_schemas == {}
    sample = (external_cases / "social_care" / "cin-2022.xml").read_bytes()
    broken = sample.replace(b"<Child>", b"<Child><NotInTheSchema/>", 1)
    with_xsd = ADAPTER.adapt(broken, AdaptContext(source="cin.xml", settings=adapting))
    without = ADAPTER.adapt(broken, AdaptContext(source="cin.xml"))
    assert with_xsd.rejections and not any(r.field == "NotInTheSchema" and "NotInTheSchema" in r.reason
                                           for r in with_xsd.rejections)
    assert len(without.events) > len(with_xsd.events)  # the invalid child is refused only where the XSD applies


def test_an_unreadable_xsd_folder_is_a_plain_startup_error(tmp_path: Path) -> None:
    from broker.adapter_settings import AdapterSettingsError, adapter_settings
    from broker.config import Settings

    (tmp_path / "CIN_schema_2024.xsd").write_text("<not-a-schema")
    with pytest.raises(AdapterSettingsError, match="MASH_CIN_XSD_DIR"):
        adapter_settings(Settings(cin_xsd_dir=tmp_path))


def test_the_education_threshold_comes_from_the_settings_object() -> None:
    assert AdaptContext(settings=AdapterSettings(attendance_threshold=0.8)).attendance_threshold == 0.8
    assert AdaptContext().attendance_threshold == AdapterSettings().attendance_threshold
