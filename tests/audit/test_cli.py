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
    assert code == 0 and out.startswith("checkpoint at seq 15")  # it covers its own admin_action (seq 15)
    code, out, _ = cli("prune", "--data-dir", str(data_dir))
    assert code == 0 and "nothing pruned" in out
    code, out, _ = cli("prune", "--data-dir", str(data_dir), "--keep", "protocol_change=1,record_received=1",
                       "--keep", "delivery_read=1", "--now", "2027-01-01T00:00:00Z", "--compact")
    assert code == 0 and "pruned 5 records" in out and "compacted 2" in out
    assert cli("verify", "--data-dir", str(data_dir))[0] == 0
    assert cli("prune", "--data-dir", str(data_dir), "--keep", "names=3")[0] == 2


def test_cli_actions_name_the_account_that_ran_them(data_dir: Path, tmp_path: Path) -> None:
    """checkpoint, export and prune are admin actions: each audit record names who acted, not just "cli"."""
    from broker.api.principal import cli_actor

    assert cli("checkpoint", "--data-dir", str(data_dir))[0] == 0
    assert cli("export", "--format", "csv", "--out", str(tmp_path / "a.csv"), "--data-dir", str(data_dir))[0] == 0
    assert cli("prune", "--data-dir", str(data_dir), "--keep", "delivery_read=1", "--now", "2027-01-01T00:00:00Z",
               "--compact")[0] == 0
    store = open_audit_store(data_dir)
    actions = [(e["record"]["action"], e["record"]["actor"]) for e in store.search(kind="admin_action",
                                                                                    newest_first=False)]
    store.close()
    assert actions == [("audit.checkpoint", cli_actor()), ("audit.export", cli_actor()),
                       ("audit.prune", cli_actor())]
    assert cli_actor().startswith("cli:uid")


def test_export_carries_the_checkpoint_interval_and_head(data_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    assert cli("export", "--format", "jsonl", "--out", str(export), "--data-dir", str(data_dir))[0] == 0
    header = json.loads(export.read_text().splitlines()[0])
    assert header["version"] == 2 and header["checkpoint_every"] == 1000
    assert header["head"]["seq"] == 14


def test_an_export_stripped_of_checkpoints_and_tail_fails_against_the_interval(data_dir: Path, tmp_path: Path) -> None:
    """An export edited to drop its last records, its head line's claim and every checkpoint: with the published
    interval (5 here) the verifier expects checkpoints at 5 and 10 and finds none."""
    export = tmp_path / "audit.jsonl"
    assert cli("export", "--format", "jsonl", "--out", str(export), "--data-dir", str(data_dir))[0] == 0
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    kept = [line for line in lines if line["type"] == "entry" and line["seq"] <= 11]
    header = {k: v for k, v in lines[0].items() if k != "head"}
    export.write_text("".join(json.dumps(line) + "\n" for line in [header, *kept]))
    assert cli("verify", str(export))[0] == 0  # what the defect allowed: the header's interval was edited too
    code, out, _ = cli("verify", str(export), "--checkpoint-every", "5", "--json")
    assert code == 1 and json.loads(out)["first_bad_seq"] == 5 and json.loads(out)["fault"] == "checkpoint_missing"


def test_an_export_whose_last_lines_were_cut_fails_against_its_head(data_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "audit.jsonl"
    assert cli("export", "--format", "jsonl", "--out", str(export), "--data-dir", str(data_dir))[0] == 0
    lines = export.read_text().splitlines()
    cut = [line for line in lines if json.loads(line).get("seq") != 14 or json.loads(line)["type"] != "entry"]
    cut = [line for line in cut if json.loads(line)["type"] != "checkpoint" or json.loads(line)["seq"] < 14]
    export.write_text("\n".join(cut) + "\n")
    code, out, _ = cli("verify", str(export), "--json")
    assert code == 1 and json.loads(out)["first_bad_seq"] == 14 and json.loads(out)["fault"] == "head"
