"""Every registered adapter, fed arbitrary bytes and mutations of valid records: AdapterOutput or AdapterInputError,
never another exception. Seeds are the benchmark's synthetic records (broker.bench.records) for each format."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.kit.interface import AdaptContext, AdapterInputError, AdapterOutput
from adapters.kit.registry import all_adapters
from broker.bench.records import FORMATS

SETTINGS = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")), deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
CTX = AdaptContext(source="fuzz", received_at="2026-01-01T00:00:00Z", system="999")
ADAPTERS = {a.name: a for a in all_adapters()}
# Prefixes that get arbitrary bytes past each adapter's first checks (root element, header row, segment name).
PREFIXES = [b"", b"<?xml version='1.0'?><CTfile>", b"<Message>", b"<SchoolCensus>", b"MSH|^~\\&|", b"{\"records\":",
            b"{\"resourceType\":\"Bundle\",", b"CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC\r\n"]
TOKENS = [b"<", b">", b"</", b"&", b"&amp;", b"<!DOCTYPE x [<!ENTITY e 'x'>]>", b"|", b"^", b"\r", b"\n", b",",
          b'"', b"{", b"}", b"[", b"]", b"null", b"\x00", b"\xff\xfe", b"99999999999", b"-1", b"2024-13-45",
          b"\xc3\x28", b"9990000018", b"\xef\xbb\xbf"]


def seeds(name: str) -> list[bytes]:
    made = [f.make(n) for f in FORMATS if f.name == name for n in (1, 7)]
    return made or [p + b"<Pupil/>" for p in PREFIXES[1:4]]


def holds(adapter, data: bytes) -> None:
    try:
        out = adapter.adapt(data, CTX)
    except AdapterInputError as exc:
        assert exc.rejection.reason
        return
    assert isinstance(out, AdapterOutput)
    assert all(r.reason for r in out.rejections)


@st.composite
def mutated(draw, originals: list[bytes]) -> bytes:
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "duplicate"]))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 40))]
        elif op == "insert":
            data[pos:pos] = draw(st.sampled_from(TOKENS))
        elif op == "duplicate":
            end = min(len(data), pos + draw(st.integers(1, 200)))
            data[pos:pos] = data[pos:end]
        else:
            del data[pos:]
    return bytes(data)


@pytest.fixture(params=sorted(ADAPTERS))
def adapter(request):
    return ADAPTERS[request.param]


def test_every_format_has_a_fuzz_seed():
    assert ADAPTERS, "no adapter registered"
    for name in ADAPTERS:
        for seed in seeds(name):
            holds(ADAPTERS[name], seed)


@SETTINGS
@given(prefix=st.sampled_from(PREFIXES), tail=st.binary(max_size=600))
def test_arbitrary_bytes(adapter, prefix: bytes, tail: bytes) -> None:
    holds(adapter, prefix + tail)


@SETTINGS
@given(data=st.data())
def test_mutated_valid_records(adapter, data) -> None:
    holds(adapter, data.draw(mutated(seeds(adapter.name))))
