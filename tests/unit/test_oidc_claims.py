"""Which broker roles an identity provider's (verified) token claims grant; and a provider without an audience."""

from __future__ import annotations

import pytest

from broker.api.oidc import grants_from_claims
from broker.api.principal import Principal
from broker.config import Settings
from broker.service.runtime import Runtime, StartupFailed


def test_roles_claim_maps_to_scoped_and_unscoped_roles() -> None:
    claims = {"sub": "s1", "azp": "lcs-prod", "roles": ["mash.intake.social_care", "mash.subscriber.mash_hub",
                                                        "mash.ig_auditor", "mash.admin", "User.Read"]}
    assert grants_from_claims(claims) == (
        Principal("oidc:lcs-prod", "intake", "social_care"), Principal("oidc:lcs-prod", "subscriber", "mash_hub"),
        Principal("oidc:lcs-prod", "ig_auditor", None), Principal("oidc:lcs-prod", "admin", None))


@pytest.mark.parametrize("value", ["mash.intake", "mash.admin.all", "mash.root", "intake.health", "", "mash."])
def test_malformed_or_unknown_roles_grant_nothing(value: str) -> None:
    assert grants_from_claims({"sub": "s1", "roles": [value]}) == ()


def test_a_space_separated_scope_claim_and_a_missing_claim() -> None:
    claims = {"sub": "s1", "scope": "openid mash.subscriber.early_help"}
    assert grants_from_claims(claims, "scope") == (Principal("oidc:s1", "subscriber", "early_help"),)
    assert grants_from_claims(claims) == ()  # no `roles` claim
    assert grants_from_claims({"sub": "s1", "roles": {"mash.admin": True}}) == ()  # not a list or a string


def test_an_issuer_without_an_audience_stops_the_start(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path, oidc_issuer="https://idp.example/realm", dev_mode=True)
    with pytest.raises(StartupFailed, match="MASH_OIDC_AUDIENCE"):
        Runtime(settings).load_local()
