"""`mash-broker audit`: verify exit codes (0 ok, 1 tampered, 2 unusable), export formats, checkpoint, prune."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fhir.resources.R4B.bundle import Bundle
from typer.testing import CliRunner

from broker.audit.checkpoint import public_key_b64
from broker.audit.store import open_audit_store
from broker.cli.audit import app
from tests.audit.conftest import CHILD_A, seed_records

runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    store = open_audit_store(tmp_path, create_key=True, checkpoint_every=5)
    store.append(seed_records())
    store.close()
    return tmp_path


def cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_verify_live_store_ok(data_dir: Path) -> None:
    code, out, _ = cli("verify", "--data-dir", str(data_dir))
    assert code == 0 and out.startswith("OK: 14 records verified")


def test_verify_live_store_tampered(data_dir: Path) -> None:
    import sqlite3

    with sqlite3.connect(data_dir / "audit.sqlite") as db:
        db.execute("UPDATE audit_entry SET body = replace(body, 'csc-front-door', 'police-ppu') WHERE seq = 5")
    code, out, _ = cli("verify", "--data-dir", str(data_dir), "--json")
    assert code == 1 and json.loads(out)["first_bad_seq"] == 5


def test_export_then_verify_the_file(data_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    code, out, _ = cli("export", "--format", "jsonl", "--out", str(export), "--data-dir", str(data_dir))
    assert code == 0 and "wrote 14 records" in out
    code, out, err = cli("verify", str(export))
    assert code == 0 and "OK" in out and "key id ed25519:" in err
    published = tmp_path / "published.pub"
    published.write_text((data_dir / "audit-signing.pub").read_text())
    assert cli("verify", str(export), "--public-key", str(published))[0] == 0
    # the export was itself audited, after it was written
    assert cli("verify", "--data-dir", str(data_dir))[1].startswith("OK: 15 records")


def test_tampered_export_names_the_first_bad_record(data_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    cli("export", "--format", "jsonl", "--out", str(export), "--data-dir", str(data_dir))
    lines = export.read_text().splitlines()
    del lines[7]  # the entry with seq 7
    export.write_text("\n".join(lines) + "\n")
    code, out, _ = cli("verify", str(export))
    assert code == 1 and "first bad record seq 7" in out


def test_truncated_export_is_caught_by_its_checkpoint(data_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    cli("export", "--format", "jsonl", "--out", str(export), "--data-dir", str(data_dir))
    lines = export.read_text().splitlines()
    kept = [line for line in lines if json.loads(line).get("seq", 0) <= 10 or json.loads(line)["type"] != "entry"]
    export.write_text("\n".join(kept) + "\n")
    code, out, _ = cli("verify", str(export))
    assert code == 1 and "truncated" in out


def test_export_resigned_with_another_key_fails_against_the_published_key(data_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    cli("export", "--format", "jsonl", "--out", str(export), "--data-dir", str(data_dir))
    other = tmp_path / "other.pub"
    other.write_text(public_key_b64(Ed25519PrivateKey.generate().public_key()))
    code, out, _ = cli("verify", str(export), "--public-key", str(other))
    assert code == 1 and "not made by this key" in out


@pytest.mark.parametrize("content", [None, "", "this is not an export\n", '{"type": "entry", "seq": 1}\n'])
def test_unusable_input_exits_2(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "export.jsonl"
    if content is not None:
        path.write_text(content)
    assert cli("verify", str(path))[0] == 2


def test_unusable_store_or_key_exits_2(tmp_path: Path, data_dir: Path) -> None:
    assert cli("verify", "--data-dir", str(tmp_path / "nowhere"))[0] == 2
    bad_key = tmp_path / "bad.pub"
    bad_key.write_text("not a key")
    assert cli("verify", "--data-dir", str(data_dir), "--public-key", str(bad_key))[0] == 2
    assert cli("verify", "--audit-url", "postgresql://mash@127.0.0.1:1/none", "--data-dir", str(data_dir))[0] == 2


def test_export_csv_fhir_and_sar(data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit.csv"
    assert cli("export", "--format", "csv", "--out", str(out), "--data-dir", str(data_dir))[0] == 0
    assert len(list(csv.DictReader(out.open()))) == 14
    out = tmp_path / "child.csv"
    code = cli("export", "--format", "csv", "--subject", CHILD_A, "--out", str(out), "--data-dir", str(data_dir))[0]
    assert code == 0
    assert len(list(csv.DictReader(out.open()))) == 5
    out = tmp_path / "bundle.json"
    assert cli("export", "--format", "fhir", "--out", str(out), "--data-dir", str(data_dir))[0] == 0
    assert len(Bundle.model_validate(json.loads(out.read_text())).entry) > 14  # includes the csv exports' records
    out = tmp_path / "sar.html"
    code, text, _ = cli("export", "--format", "sar", "--subject", CHILD_A, "--out", str(out), "--data-dir",
                        str(data_dir))
    assert code == 0 and "wrote 1 disclosures" in text and "health-to-front-door" in out.read_text()
    assert cli("export", "--format", "sar", "--out", str(out), "--data-dir", str(data_dir))[0] == 2
    assert cli("export", "--format", "pdf", "--out", str(out), "--data-dir", str(data_dir))[0] == 2


def test_checkpoint_and_prune(data_dir: Path) -> None:
    code, out, _ = cli("checkpoint", "--data-dir", str(data_dir))
    assert code == 0 and out.startswith("checkpoint at seq 14")
    code, out, _ = cli("prune", "--data-dir", str(data_dir))
    assert code == 0 and "nothing pruned" in out
    code, out, _ = cli("prune", "--data-dir", str(data_dir), "--keep", "protocol_change=1,record_received=1",
                       "--keep", "delivery_read=1", "--now", "2027-01-01T00:00:00Z", "--compact")
    assert code == 0 and "pruned 5 records" in out and "compacted 2" in out
    assert cli("verify", "--data-dir", str(data_dir))[0] == 0
    assert cli("prune", "--data-dir", str(data_dir), "--keep", "names=3")[0] == 2
