"""Sealed deliveries opened by an independent HPKE implementation in Go (tests/interop/go: CIRCL for x25519, the Go
standard library's crypto/hpke for mlkem768-x25519), from the published vectors and live from the broker's sealer.

The opener is built once per source hash into ~/.cache/mash-broker/interop (modules from the Go proxy into the usual
module cache, compiled packages into GOCACHE), so only the first run on a machine pays for the download and build.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from broker.crypto import vectors
from broker.crypto.hpke_keys import HYBRID, X25519
from broker.crypto.seal import DeliverySealer, generate_subscriber_keypair

GO_SRC = Path(__file__).parent / "go"
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mash-broker" / "interop"
GO = shutil.which("go")
pytestmark = pytest.mark.skipif(GO is None, reason="no Go toolchain on PATH (go 1.26+): the interop opener cannot "
                                                   "be built")


def _go(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    # keep the caller's GOFLAGS; never edit go.mod/go.sum, never stamp VCS data, never fetch another toolchain
    flags = f"{os.environ.get('GOFLAGS', '')} -mod=readonly -buildvcs=false".strip()
    env = {**os.environ, "GOFLAGS": flags, "GOTOOLCHAIN": "local", "CGO_ENABLED": "0"}
    assert GO is not None
    return subprocess.run([GO, *args], cwd=GO_SRC, env=env, text=True, capture_output=True, check=False, **kw)


@pytest.fixture(scope="module")
def opener() -> Path:
    digest = hashlib.sha256(b"".join((GO_SRC / f).read_bytes() for f in ("go.mod", "go.sum", "main.go"))).hexdigest()
    binary = CACHE / f"mash-open-{digest[:16]}"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        built = _go("build", "-trimpath", "-o", str(binary) + ".tmp", ".")
        if built.returncode:
            if "requires go >=" in built.stderr or "go.mod requires go" in built.stderr:
                pytest.skip(f"the Go toolchain is older than go.mod asks (1.26): {built.stderr.strip()[:200]}")
            pytest.fail(f"go build failed:\n{built.stderr}")
        os.replace(str(binary) + ".tmp", binary)
        for old in CACHE.glob("mash-open-*"):  # builds of earlier sources are never used again
            if old != binary:
                old.unlink(missing_ok=True)
    return binary


def _open(binary: Path, cases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done = subprocess.run([str(binary)], input=json.dumps({"cases": cases}), text=True, capture_output=True,
                          check=True)
    results: list[dict[str, Any]] = json.loads(done.stdout)["results"]
    assert [r["name"] for r in results] == [c["name"] for c in cases]
    return results


def _vector(suite: str) -> dict[str, Any]:
    name = next(k for k, s in vectors.FILES.items() if s == suite)
    return orjson.loads((vectors.VECTOR_DIR / name).read_bytes())


@pytest.mark.parametrize("suite", [X25519, HYBRID])
def test_go_opens_every_published_vector(opener: Path, suite: str) -> None:
    v = _vector(suite)
    cases = [{"name": m["event_id"], "key_file": v["recipient_key_file"], "delivery_base64": m["delivery_base64"],
              "subscriber": v["subscriber"]} for m in v["messages"]]
    for result, m in zip(_open(opener, cases), v["messages"], strict=True):
        assert result["ok"], result["error"]
        assert result["plaintext"] == m["plaintext"]
        assert result["event_id"] == m["event_id"]


def test_go_refuses_every_must_fail_vector(opener: Path) -> None:
    n = orjson.loads((vectors.VECTOR_DIR / "must-fail.json").read_bytes())
    # no expected subscriber: the HPKE info and AES-GCM aad must refuse on their own
    cases = [{"name": c["why"], "key_file": n["recipient_key_file"],
              "delivery_base64": base64.b64encode(c["delivery"].encode()).decode()} for c in n["must_fail"]]
    results = _open(opener, cases)
    assert [r["name"] for r in results if r["ok"]] == []
    assert all(r["error"] for r in results)


@pytest.mark.parametrize("suite", [X25519, HYBRID])
def test_go_opens_live_deliveries_from_the_broker_sealer(opener: Path, suite: str) -> None:
    """A fresh subscriber key, the broker's DeliverySealer with a content-key rotation between messages."""
    private, public = generate_subscriber_keypair(suite)
    sealer = DeliverySealer("interop_hub", public, suite, max_messages=2)
    events: list[dict[str, Any]] = [
        {"event_id": f"00000000-0000-4000-8000-0000000001{n:02d}", "event_type": "police.incident_child_present",
         "subject": {"child": {"given_names": ["Testchild"], "family_name": "Example"}},
         "delivery": {"decision_id": f"00000000-0000-5000-8000-0000000002{n:02d}", "protocol_version": "1.3.0"}}
        for n in range(3)]
    sealed = [sealer.seal(e) for e in events]
    assert sealer.hpke_seals == 2  # two content keys: both the cached-key path and a fresh HPKE seal
    key_file = base64.b64encode(private).decode() + "\n"
    cases = [{"name": str(e["event_id"]), "key_file": key_file, "delivery_base64": base64.b64encode(s).decode(),
              "subscriber": "interop_hub"} for e, s in zip(events, sealed, strict=True)]
    results = _open(opener, cases)
    assert [orjson.loads(r["plaintext"]) if r["ok"] else r["error"] for r in results] == events
    # the same delivery under another subscriber's key does not open
    other, _ = generate_subscriber_keypair(suite)
    wrong = _open(opener, [{**cases[0], "key_file": base64.b64encode(other).decode()}])
    assert not wrong[0]["ok"] and "HPKE open" in wrong[0]["error"]


def test_go_checks_the_transport_headers_against_the_sealed_event(opener: Path) -> None:
    """HTTP entry fields and Kafka headers are not authenticated: the opener compares them with the plaintext."""
    v = _vector(X25519)
    m = v["messages"][0]
    delivery = orjson.loads(m["plaintext"])["delivery"]
    honest = {"event_id": m["event_id"], "decision_id": delivery["decision_id"],
              "protocol_version": delivery["protocol_version"]}
    case = {"key_file": v["recipient_key_file"], "delivery_base64": m["delivery_base64"]}
    lies = {"event_id": "00000000-0000-4000-8000-000000000009", "decision_id": "00000000-0000-5000-8000-000000000999",
            "protocol_version": "0.9.0"}
    cases = [{**case, "name": "honest", "headers": honest}]
    cases += [{**case, "name": field, "headers": {**honest, field: lie}} for field, lie in lies.items()]
    results = _open(opener, cases)
    assert results[0]["ok"], results[0]["error"]
    for r in results[1:]:
        assert not r["ok"] and r["error"].startswith(f"header {r['name']} "), r


def _module_dir(module: str) -> Path:
    listed = _go("list", "-m", "-f", "{{.Dir}}", module)
    assert listed.returncode == 0, listed.stderr
    return Path(listed.stdout.strip())


def test_our_vector_sender_matches_the_official_rfc9180_vectors(opener: Path) -> None:
    """vectors.py's RFC 9180 code reproduces every intermediate value of the official mode-0 vector for our suite
    (read from the copy CIRCL ships in its module; not committed here)."""
    path = _module_dir("github.com/cloudflare/circl") / "hpke" / "testdata" / "vectors_rfc9180_5f503c5.json.gz"
    official = [v for v in json.loads(gzip.decompress(path.read_bytes()))
                if (v["mode"], v["kem_id"], v["kdf_id"], v["aead_id"]) == (0, 0x20, 1, 2)]
    assert official
    for v in official:
        h = bytes.fromhex
        sk_e, pk_e = vectors.derive_x25519_keypair(h(v["ikmE"]))
        sk_r, pk_r = vectors.derive_x25519_keypair(h(v["ikmR"]))
        assert (sk_e.hex(), pk_e.hex(), sk_r.hex(), pk_r.hex()) == (v["skEm"], v["pkEm"], v["skRm"], v["pkRm"])
        ss, enc = vectors.dhkem_encap(pk_r, sk_e)
        assert (enc.hex(), ss.hex()) == (v["enc"], v["shared_secret"])
        ks = vectors.key_schedule(X25519, ss, h(v["info"]))
        assert {k: ks[k].hex() for k in ks} == {k: v[k] for k in ks}


def test_our_xwing_combiner_matches_the_go_standard_library_vectors(opener: Path) -> None:
    """The MLKEM768-X25519 shared secret of docs/delivery-format.md, from Go's own hpke-pq test vectors (the X-Wing
    seed expanded with SHAKE-256 to the ML-KEM seed and X25519 key that a mash-broker key file holds)."""
    from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    goroot = _go("env", "GOROOT").stdout.strip()
    path = Path(goroot) / "src" / "crypto" / "hpke" / "testdata" / "hpke-pq.json"
    if not path.exists():
        pytest.skip(f"{path} not in this Go installation")
    official = [v for v in json.loads(path.read_text()) if int(v["kem_id"]) == vectors.KEM_IDS[HYBRID]]
    assert official
    for v in official:
        expanded = hashlib.shake_256(bytes.fromhex(v["skRm"])).digest(96)
        m, x = MLKEM768PrivateKey.from_seed_bytes(expanded[:64]), X25519PrivateKey.from_private_bytes(expanded[64:])
        pk_x = x.public_key().public_bytes_raw()
        assert (m.public_key().public_bytes_raw() + pk_x).hex() == v["pkRm"]
        enc = bytes.fromhex(v["enc"])
        ct_m, ct_x = enc[:vectors.MLKEM_CIPHERTEXT], enc[vectors.MLKEM_CIPHERTEXT:]
        ss = vectors.xwing_combine(m.decapsulate(ct_m), x.exchange(X25519PublicKey.from_public_bytes(ct_x)), ct_x,
                                   pk_x)
        assert ss.hex() == v["shared_secret"]
