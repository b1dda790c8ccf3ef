"""The decision_maker role: scoped to one partner of the protocol, from an API key (`mash-broker apikeys create`)
or an identity provider's role `mash.decision_maker.<partner>`; never without a partner, never for a stranger."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from broker.api.auth import ApiKeyStore, scope_problem
from broker.api.oidc import grants_from_claims
from broker.api.principal import Principal
from broker.audit.store import open_audit_store
from broker.cli.apikeys import app

ROOT = Path(__file__).resolve().parents[2]
PROTOCOL = ROOT / "deploy" / "protocols" / "sample-partnership.yaml"
runner = CliRunner()


def test_a_decision_maker_acts_for_one_partner_of_the_protocol() -> None:
    partners = {"exampleshire-csc", "exampleshire-icb"}
    assert scope_problem("decision_maker", "exampleshire-csc", partners=partners) is None
    assert "needs scope" in scope_problem("decision_maker", None, partners=partners)
    refused = scope_problem("decision_maker", "someone-else", partners=partners)
    assert "partner in the protocol" in refused and "someone-else" not in refused


def test_an_identity_providers_role_grants_decision_maker_only_with_a_partner() -> None:
    claims = {"sub": "abc123", "roles": ["mash.decision_maker.exampleshire-csc", "mash.decision_maker"]}
    assert grants_from_claims(claims) == (Principal("oidc:abc123", "decision_maker", "exampleshire-csc"),)


def test_apikeys_create_checks_the_partner_and_audits_it(tmp_path: Path) -> None:
    args = ["create", "--role", "decision_maker", "--protocol-file", str(PROTOCOL), "--data-dir", str(tmp_path)]
    bad = runner.invoke(app, [*args, "--scope", "not-a-partner"])
    assert bad.exit_code == 2 and "partner in the protocol" in bad.output
    ok = runner.invoke(app, [*args, "--scope", "exampleshire-icb"])
    assert ok.exit_code == 0, ok.output
    key_id, grant, key = ok.output.strip().split("\t")
    assert grant == "decision_maker:exampleshire-icb"
    assert ApiKeyStore(tmp_path / "api-keys.json").authenticate(key).scope == "exampleshire-icb"
    audit = open_audit_store(tmp_path)
    try:
        [record] = [e["record"] for e in audit.search(kind="admin_action")]
    finally:
        audit.close()
    assert record["target"] == key_id and "exampleshire-icb" in record["reason"]
