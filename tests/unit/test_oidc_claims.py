"""Which broker roles an identity provider's (verified) token claims grant; and a provider without an audience."""

from __future__ import annotations

import pytest

from broker.api.oidc import grants_from_claims
from broker.api.principal import Principal
from broker.config import Settings
from broker.service.root import StartupFailed, load_local


def test_roles_claim_maps_to_scoped_and_unscoped_roles() -> None:
    claims = {"sub": "s1", "azp": "lcs-prod", "roles": ["mash.intake.social_care", "mash.subscriber.mash_hub",
                                                        "mash.ig_auditor", "mash.admin", "User.Read"]}
    assert grants_from_claims(claims) == (  # named after the subject (who acted), not the client application
        Principal("oidc:s1", "intake", "social_care"), Principal("oidc:s1", "subscriber", "mash_hub"),
        Principal("oidc:s1", "ig_auditor", None), Principal("oidc:s1", "admin", None))
    assert [p.actor for p in grants_from_claims(claims)] == [
        "intake:social_care:oidc:s1", "subscriber:mash_hub:oidc:s1", "ig_auditor:oidc:s1", "admin:oidc:s1"]


@pytest.mark.parametrize("sub", ["jane.example@council.example", "9990000018", "a" * 200, "x y", "sub\nline", "é"])
def test_a_subject_unfit_for_the_audit_log_becomes_a_keyed_hash(sub: str) -> None:
    """An e-mail address, an NHS-number-like run of digits or an odd string never enters the audit actor."""
    from broker.audit.record import audit_record

    (grant,) = grants_from_claims({"sub": sub, "roles": ["mash.admin"]}, actor_key=b"k1")
    assert grant.key_id.startswith("oidc-h:") and sub not in grant.actor
    assert grant == grants_from_claims({"sub": sub, "roles": ["mash.admin"]}, actor_key=b"k1")[0]  # stable
    assert grant != grants_from_claims({"sub": sub, "roles": ["mash.admin"]}, actor_key=b"k2")[0]  # keyed
    audit_record("admin_action", time="2026-03-01T00:00:00Z", actor=grant.actor, action="consent.record")


def test_every_actor_fits_the_audit_schema() -> None:
    from broker.audit.record import audit_record

    longest = {"sub": "s" * 48, "roles": ["mash.subscriber." + "b" * 49]}
    for grant in grants_from_claims(longest):
        audit_record("delivery_read", time="2026-03-01T00:00:00Z", actor=grant.actor, subscriber="b" * 49,
                     event_id="5afe0000-0000-4000-8000-000000000001")


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
        load_local(settings)
