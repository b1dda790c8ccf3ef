"""Property tests: any bytes, or a valid input mutated, give AdapterOutput or AdapterInputError, nothing else."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.health.fhir import ADAPTER as FHIR
from adapters.health.hl7v2 import ADAPTER as HL7V2
from adapters.kit.interface import AdaptContext, AdapterInputError, AdapterOutput
from tests.adapters.fuzzing import mutated
from tests.adapters.health.builders import (
    as_json,
    as_xml,
    bundle,
    careplan,
    concept,
    condition,
    flag,
    hl7_message,
    observation,
    patient,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FHIR_SEEDS = [as_json(bundle(patient(), flag(concept("836881000000105")), careplan([concept("CPPI")]),
                             condition(concept("X78", "http://hl7.org/fhir/sid/icd-10")),
                             observation(concept("1", "http://loinc.org"), concept("412732008")))),
              as_xml(bundle(patient(), flag(concept("226201008"))))]
HL7_SEEDS = [hl7_message("A01").encode(), hl7_message("A40", pv1=False, extra="MRG|9990000026^^^NHS^NH").encode(),
             hl7_message("A03", discharge="20240305").encode()]


def _holds(adapter, data: bytes) -> None:
    try:
        out = adapter.adapt(data, AdaptContext(source="fuzz"))
    except AdapterInputError:
        return
    assert isinstance(out, AdapterOutput)


INSERTS = [b"|", b"^", b"~", b"&", b"\\", b"\r", b"MSH|", b'"', b"{", b"}",
                                                  b"<", b">", b"\x00", b"\xff", b"null", b"[]", b"99999999"]


@SETTINGS
@given(st.binary(max_size=400))
def test_fhir_arbitrary_bytes(data: bytes) -> None:
    _holds(FHIR, data)


@SETTINGS
@given(mutated(FHIR_SEEDS, INSERTS))
def test_fhir_mutated_input(data: bytes) -> None:
    _holds(FHIR, data)


@SETTINGS
@given(st.binary(max_size=400).map(lambda b: b"MSH|" + b))
def test_hl7v2_arbitrary_bytes(data: bytes) -> None:
    _holds(HL7V2, data)


@SETTINGS
@given(mutated(HL7_SEEDS, INSERTS))
def test_hl7v2_mutated_input(data: bytes) -> None:
    _holds(HL7V2, data)


@SETTINGS
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(
                        st.sampled_from(["resourceType", "entry", "resource", "id", "code", "subject", "coding",
                                         "fullUrl", "patient", "category"]), kids, max_size=4), max_leaves=12))
def test_fhir_arbitrary_json_shapes(shape: object) -> None:
    _holds(FHIR, json.dumps(shape).encode())
