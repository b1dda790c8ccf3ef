"""Test vectors for the sealed delivery format (docs/delivery-format.md), written to schemas/test-vectors/.

    python -m broker.crypto.vectors            # rewrite schemas/test-vectors/*.json
    python -m broker.crypto.vectors --check    # exit 1 if the committed files differ from a fresh generation

The broker seals with `cryptography`'s HPKE, which draws its ephemeral keys itself. Vectors need fixed ephemerals,
so this module carries its own small RFC 9180 base-mode sender (LabeledExtract/LabeledExpand, DHKEM(X25519) with
DeriveKeyPair, the key schedule) and the MLKEM768-X25519 (X-Wing) combiner, written from the RFCs; the tests open
every vector with the broker's own SubscriberClient, so this sender and the broker's opener must agree byte for byte.

Everything is derived from fixed labels: nothing here is random, so a second run writes identical bytes. The one
exception is ML-KEM-768's encapsulation randomness, which `cryptography` does not let a caller choose: the hybrid
vector keeps its recorded ML-KEM ciphertext (checked by decapsulating it) and re-derives every other byte.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from broker.crypto.hpke_keys import HYBRID, X25519, content_key_info, delivery_aad
from broker.crypto.seal import FORMAT_VERSION

VECTOR_DIR = Path(__file__).resolve().parents[2] / "schemas" / "test-vectors"
VECTORS_VERSION = 1

MODE_BASE = 0x00
KEM_IDS = {X25519: 0x0020, HYBRID: 0x647A}  # DHKEM(X25519, HKDF-SHA256); MLKEM768-X25519 (X-Wing)
KDF_HKDF_SHA256 = 0x0001
AEAD_AES_256_GCM = 0x0002
NK, NN = 32, 12  # AES-256-GCM key and nonce sizes
XWING_LABEL = b"\\.//^\\"  # the 6 bytes 5c 2e 2f 2f 5e 5c
MLKEM_PUBLIC, MLKEM_CIPHERTEXT = 1184, 1088


def _i2osp(n: int, size: int) -> bytes:
    return n.to_bytes(size, "big")


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt or b"\0" * 32, ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out, counter = out + block, counter + 1
    return out[:length]


def labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, _i2osp(length, 2) + b"HPKE-v1" + suite_id + label + info, length)


def _kem_suite_id(suite: str) -> bytes:
    return b"KEM" + _i2osp(KEM_IDS[suite], 2)


def hpke_suite_id(suite: str) -> bytes:
    return b"HPKE" + _i2osp(KEM_IDS[suite], 2) + _i2osp(KDF_HKDF_SHA256, 2) + _i2osp(AEAD_AES_256_GCM, 2)


def derive_x25519_keypair(ikm: bytes) -> tuple[bytes, bytes]:
    """RFC 9180 7.1.3 DeriveKeyPair for DHKEM(X25519, HKDF-SHA256): (private, public), 32 bytes each."""
    sid = _kem_suite_id(X25519)
    sk = labeled_expand(sid, labeled_extract(sid, b"", b"dkp_prk", ikm), b"sk", b"", 32)
    return sk, _x25519_public(sk)


def _x25519_public(sk: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(sk).public_key().public_bytes_raw()


def _dh(sk: bytes, pk: bytes) -> bytes:
    return X25519PrivateKey.from_private_bytes(sk).exchange(X25519PublicKey.from_public_bytes(pk))


def dhkem_encap(pk_r: bytes, sk_e: bytes) -> tuple[bytes, bytes]:
    """RFC 9180 4.1 Encap with a given ephemeral private key: (shared_secret, enc)."""
    sid = _kem_suite_id(X25519)
    enc = _x25519_public(sk_e)
    eae_prk = labeled_extract(sid, b"", b"eae_prk", _dh(sk_e, pk_r))
    return labeled_expand(sid, eae_prk, b"shared_secret", enc + pk_r, 32), enc


def xwing_combine(ss_m: bytes, ss_x: bytes, ct_x: bytes, pk_x: bytes) -> bytes:
    """The X-Wing combiner: SHA3-256(ss_M || ss_X || ct_X || pk_X || XWingLabel)."""
    return hashlib.sha3_256(ss_m + ss_x + ct_x + pk_x + XWING_LABEL).digest()


def xwing_encap(pk_r: bytes, ct_m: bytes, ss_m: bytes, sk_e: bytes) -> tuple[bytes, bytes]:
    """MLKEM768-X25519 Encap given the ML-KEM half already done ((ss_M, ct_M)) and the X25519 ephemeral:
    (shared_secret, enc = ct_M || ct_X)."""
    pk_x = pk_r[MLKEM_PUBLIC:]
    ct_x = _x25519_public(sk_e)
    return xwing_combine(ss_m, _dh(sk_e, pk_x), ct_x, pk_x), ct_m + ct_x


def key_schedule(suite: str, shared_secret: bytes, info: bytes) -> dict[str, bytes]:
    """RFC 9180 5.1 KeySchedule, mode_base (no PSK): key, base_nonce, exporter_secret and the inputs between."""
    sid = hpke_suite_id(suite)
    psk_id_hash = labeled_extract(sid, b"", b"psk_id_hash", b"")
    info_hash = labeled_extract(sid, b"", b"info_hash", info)
    context = bytes([MODE_BASE]) + psk_id_hash + info_hash
    secret = labeled_extract(sid, shared_secret, b"secret", b"")
    return {"key_schedule_context": context, "secret": secret,
            "key": labeled_expand(sid, secret, b"key", context, NK),
            "base_nonce": labeled_expand(sid, secret, b"base_nonce", context, NN),
            "exporter_secret": labeled_expand(sid, secret, b"exp", context, 32)}


def _fixed(label: str, size: int) -> bytes:
    """A fixed test value: SHAKE-256 of a label. Production draws these from the OS CSPRNG."""
    return hashlib.shake_256(f"mash-broker test vector\x1f{label}".encode()).digest(size)


# The plaintexts: synthetic released events (fictitious child, 999-range NHS number), as the share stage builds them.
def _event(n: int, event_type: str) -> dict[str, Any]:
    event_id = f"00000000-0000-4000-8000-00000000000{n}"
    return {
        "event_id": event_id, "event_type": event_type, "schema_version": "1.3.0",
        "occurred_at": "2026-01-15T09:30:00Z",
        "source": {"agency": "police", "system": "Y99901"},
        "subject": {"linkage": {"token": "tok_testvector0000000000000001"},
                    "child": {"given_names": ["Testchild"], "family_name": "Example", "nhs_number": "9990000018"}},
        "delivery": {"protocol_id": "sample-partnership", "protocol_version": "1.3.0", "rule_id": "R-VECTOR",
                     "lawful_basis": ["UK_GDPR_6_1_e"], "purpose": "test vector",
                     "decision_id": f"00000000-0000-5000-8000-00000000010{n}", "consent_override": None},
    }


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _delivery(suite: str, subscriber: str, ck_id: str, sealed_ck: bytes, event_id: str, nonce_ct: bytes) -> bytes:
    """The delivery bytes exactly as DeliverySealer lays them out (same keys, same order, orjson's compact JSON)."""
    head = orjson.dumps({"mash_delivery": FORMAT_VERSION, "suite": suite, "subscriber": subscriber,
                         "content_key_id": ck_id, "content_key": _b64(sealed_ck)})
    tail = orjson.dumps({"event_id": event_id, "ciphertext": _b64(nonce_ct)})
    return head[:-1] + b"," + tail[1:]


def build_vector(suite: str, recorded: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One suite's vector. `recorded` (the committed vector) supplies the hybrid's ML-KEM ciphertext, if any."""
    subscriber = "test_hub"
    ck_id = "ck_testvector0001"
    info = content_key_info(subscriber, ck_id, suite)
    content_key = _fixed(f"{suite}\x1fcontent key", 32)
    # The X25519 ephemeral: from DeriveKeyPair for DHKEM (as RFC 9180's own vectors do); X-Wing takes 32 raw bytes.
    if suite == X25519:
        sk_e = derive_x25519_keypair(_fixed(f"{suite}\x1fephemeral ikm", 32))[0]
    else:
        sk_e = _fixed(f"{suite}\x1fephemeral x25519", 32)
    recipient: dict[str, str]
    kem: dict[str, str]
    if suite == X25519:
        ikm_r = _fixed(f"{suite}\x1frecipient ikm", 32)
        sk_r, pk_r = derive_x25519_keypair(ikm_r)
        ss, enc = dhkem_encap(pk_r, sk_e)
        recipient = {"ikm": ikm_r.hex(), "private_key": sk_r.hex(), "public_key": pk_r.hex()}
        kem = {"ephemeral_private_key": sk_e.hex(), "enc": enc.hex(), "dh": _dh(sk_e, pk_r).hex()}
    else:
        seed_m, sk_x = _fixed(f"{suite}\x1frecipient mlkem seed", 64), _fixed(f"{suite}\x1frecipient x25519", 32)
        m_key = MLKEM768PrivateKey.from_seed_bytes(seed_m)
        pk_r = m_key.public_key().public_bytes_raw() + _x25519_public(sk_x)
        sk_r = seed_m + sk_x
        ct_m = bytes.fromhex(recorded["kem"]["mlkem_ciphertext"]) if recorded else b""
        if len(ct_m) == MLKEM_CIPHERTEXT:
            ss_m = m_key.decapsulate(ct_m)
        else:  # first generation: cryptography draws the encapsulation randomness itself
            ss_m, ct_m = MLKEM768PublicKey.from_public_bytes(pk_r[:MLKEM_PUBLIC]).encapsulate()
        ss, enc = xwing_encap(pk_r, ct_m, ss_m, sk_e)
        recipient = {"mlkem_seed": seed_m.hex(), "x25519_private_key": sk_x.hex(), "private_key": sk_r.hex(),
                     "public_key": pk_r.hex()}
        kem = {"mlkem_ciphertext": ct_m.hex(), "mlkem_shared_secret": ss_m.hex(),
               "ephemeral_x25519_private_key": sk_e.hex(), "x25519_ciphertext": _x25519_public(sk_e).hex(),
               "x25519_shared_secret": _dh(sk_e, pk_r[MLKEM_PUBLIC:]).hex(), "enc": enc.hex()}
    ks = key_schedule(suite, ss, info)
    # Single-shot Seal (RFC 9180 6.1): sequence number 0, so the nonce is base_nonce itself; HPKE aad is empty.
    sealed_ck = enc + AESGCM(ks["key"]).encrypt(ks["base_nonce"], content_key, b"")
    messages = []
    for n, event_type in ((1, "police.incident_child_present"), (2, "person.linked")):
        event = _event(n, event_type)
        plaintext = orjson.dumps(event)
        aad = delivery_aad(subscriber, event["event_id"], ck_id)
        nonce = _fixed(f"{suite}\x1fmessage nonce {n}", 12)
        body = nonce + AESGCM(content_key).encrypt(nonce, plaintext, aad)
        delivery = _delivery(suite, subscriber, ck_id, sealed_ck, event["event_id"], body)
        messages.append({"event_id": event["event_id"], "plaintext": plaintext.decode(), "aad": aad.hex(),
                         "nonce": nonce.hex(), "ciphertext": body.hex(), "delivery": delivery.decode(),
                         "delivery_base64": _b64(delivery)})
    return {
        "vectors_version": VECTORS_VERSION, "suite": suite, "mash_delivery": FORMAT_VERSION,
        "hpke": {"mode": MODE_BASE, "kem_id": KEM_IDS[suite], "kdf_id": KDF_HKDF_SHA256, "aead_id": AEAD_AES_256_GCM},
        "subscriber": subscriber, "recipient": recipient,
        "recipient_key_file": _b64(sk_r) + "\n", "subscriber_public_key": _b64(pk_r),
        "content_key_id": ck_id, "content_key": content_key.hex(), "info": info.hex(), "kem": kem,
        "shared_secret": ss.hex(), "key_schedule": {k: v.hex() for k, v in ks.items()},
        "sealed_content_key": sealed_ck.hex(), "messages": messages,
    }


def _negatives(x: Mapping[str, Any]) -> dict[str, Any]:
    """Deliveries a correct opener must refuse, each built from the x25519 vector's first message."""
    good = orjson.loads(x["messages"][0]["delivery"])

    def variant(why: str, **changes: Any) -> dict[str, str]:
        return {"why": why, "delivery": orjson.dumps({**good, **changes}).decode()}

    other_ct = bytes.fromhex(x["messages"][1]["ciphertext"])
    flipped = bytearray(bytes.fromhex(x["messages"][0]["ciphertext"]))
    flipped[20] ^= 1
    return {"vectors_version": VECTORS_VERSION, "suite": X25519, "recipient_key_file": x["recipient_key_file"],
            "subscriber": x["subscriber"], "must_fail": [
                variant("event_id changed: the AES-GCM aad binds it", event_id="00000000-0000-4000-8000-000000000009"),
                variant("subscriber changed: the HPKE info and the aad bind it", subscriber="other_hub"),
                variant("content_key_id changed: the HPKE info and the aad bind it", content_key_id="ck_other"),
                variant("ciphertext of another event under this event_id", ciphertext=_b64(other_ct)),
                variant("one ciphertext bit flipped", ciphertext=_b64(bytes(flipped))),
                variant("unknown format version", mash_delivery=2),
            ]}


FILES = {"x25519.json": X25519, "mlkem768-x25519.json": HYBRID}


def _dump(obj: Any) -> bytes:
    return orjson.dumps(obj, option=orjson.OPT_INDENT_2) + b"\n"


def generate(directory: Path = VECTOR_DIR) -> dict[str, bytes]:
    """File name -> bytes of every vector file, reusing the recorded ML-KEM ciphertext found in `directory`."""
    out: dict[str, bytes] = {}
    vectors: dict[str, dict[str, Any]] = {}
    for name, suite in FILES.items():
        path = directory / name
        recorded = orjson.loads(path.read_bytes()) if path.exists() else None
        vectors[suite] = build_vector(suite, recorded)
        out[name] = _dump(vectors[suite])
    out["must-fail.json"] = _dump(_negatives(vectors[X25519]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m broker.crypto.vectors", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=VECTOR_DIR)
    parser.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    args = parser.parse_args(argv)
    files = generate(args.dir)
    if args.check:
        stale = [n for n, data in files.items() if not (args.dir / n).exists() or (args.dir / n).read_bytes() != data]
        for name in stale:
            print(f"{args.dir / name}: differs from a fresh generation", file=sys.stderr)
        return 1 if stale else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (args.dir / name).write_bytes(data)
    print(f"wrote {len(files)} files to {args.dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
