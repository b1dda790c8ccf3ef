"""`mash-broker decisions`: the referrals waiting for a recorded human decision, and a decision on one.

`list` reads the referral register (SQLite in the data directory, or MASH_STORE_URL) as an operator on the host.
`decide` goes through the running service's API with a decision_maker key (`--key` or MASH_API_KEY): the decision
is a disclosure the service makes (it reads the event back from Kafka, seals and delivers it), and the API is
where the decider's partner is checked and the decision audited under their credential.

`s47-request`, `s47-withdraw`, `adult-at-risk`, `adult-at-risk-withdraw` and `determinations` record, withdraw and
list recorded determinations (broker/stores/determinations.py) through the same API, for the same reasons.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broker.cli.service_call import call_service, open_local_register

app = typer.Typer(help="Referrals waiting for a recorded human decision (share, withhold, share in part).",
                  no_args_is_help=True)


@app.command("list")
def list_referrals(status: Annotated[str, typer.Option(help="pending, share, share_in_part, withhold or all.")]
                   = "pending",
                   partner: Annotated[str | None, typer.Option(help="Only those this partner may decide.")] = None,
                   data_dir: Annotated[Path | None, typer.Option(help="Data directory (MASH_DATA_DIR).")] = None,
                   ) -> None:
    """Referrals, oldest first: ids, token, event type, rule, restriction, who may decide (never event content)."""
    from broker.stores.decisions import ReferralRegister

    register = open_local_register(ReferralRegister, ReferralRegister.FILE, "referral", data_dir)
    try:
        found = register.listed(status=None if status == "all" else status,
                                deciders={partner} if partner else None)
    finally:
        register.close()
    # one tab-separated line per referral (ids are long; a table would truncate them on a narrow terminal)
    typer.echo("referral\tstatus\tsubscriber\tevent type\trule\trestriction\tdeciders\treferred")
    for r in found:
        typer.echo("\t".join((r.referral_id, r.status, r.subscriber, r.event_type, r.rule_id, r.restriction,
                              ",".join(r.deciders), r.referred_at)))


@app.command()
def decide(referral_id: str,
           decision: Annotated[str, typer.Option(help="share, share_in_part or withhold.")],
           reason: Annotated[str, typer.Option(help="Why, naming no one (no names, numbers or addresses).")],
           withhold_classification: Annotated[list[str] | None, typer.Option(
               help="share_in_part: a classification to withhold (repeatable).")] = None,
           withhold_path: Annotated[list[str] | None, typer.Option(
               help="share_in_part: a field path to withhold (repeatable).")] = None,
           url: Annotated[str | None, typer.Option(help="The service (default http://MASH_HOST:MASH_PORT).")] = None,
           key: Annotated[str | None, typer.Option(help="A decision_maker API key (MASH_API_KEY).")] = None) -> None:
    """Decide one referral through the service's API; exit 0 decided, 1 refused (the service's reason), 2 unusable."""

    body = {"decision": decision, "reason": reason, "withhold_classifications": withhold_classification or [],
            "withhold_paths": withhold_path or []}
    answer = call_service("decisions decide", "POST", f"/v1/decisions/referrals/{referral_id}", body, url=url,
                          key=key, key_hint="a decision_maker key")
    typer.echo(f"{answer['referral_id']}\t{answer['status']}\t{'delivered' if answer['delivered'] else 'not sent'}"
               f"\t{answer['delivery']}")


# --- recorded determinations (broker/stores/determinations.py) ----------------------------------------------------
# Recorded through the service's API, like a decision: it checks the child is known, the caller's partner, the codes,
# and audits the act under the caller's credential.
Url = Annotated[str | None, typer.Option(help="The service (default http://MASH_HOST:MASH_PORT).")]
Key = Annotated[str | None, typer.Option(help="A decision_maker (or, for s47(9) requests, admin) API key "
                                              "(MASH_API_KEY).")]


def _call(command: str, method: str, path: str, body: dict[str, object] | None, url: str | None,
          key: str | None) -> dict[str, object]:
    """One API call under /v1/decisions; exits 1 refused (the service's value-free reason), 2 unusable."""
    return call_service(f"decisions {command}", method, f"/v1/decisions{path}", body, url=url, key=key)


def _line(view: dict[str, object]) -> str:
    """One tab-separated line: kind, id, state, what it says (partners or at-risk and its reason), who, when."""
    says = ",".join(view["partners"]) if view["kind"] == "s47_request" else (  # type: ignore[arg-type]
        f"at_risk={str(view['at_risk']).lower()}:{view['reason']}")
    state = "in force" if view["active"] else f"ended ({view['end_reason']})"
    return "\t".join(str(v) for v in (view["kind"], view["id"], state, says, view["recorded_by"],
                                       view["recorded_at"]))


@app.command("s47-request")
def s47_request(subject: Annotated[str, typer.Argument(help="The child's linkage token.")],
                partner: Annotated[list[str], typer.Option(help="A partner id called upon (repeatable).")],
                enquiry_ref: Annotated[str | None, typer.Option(help="The enquiry's reference (a short code).")]
                = None,
                requested_by: Annotated[str | None, typer.Option(
                    help="The requesting local authority's partner id (an admin key must give it).")] = None,
                url: Url = None, key: Key = None) -> None:
    """Record an s47(9) request: the local authority calls upon partners to assist its s47 enquiry."""
    body = {"partners": partner, "enquiry_ref": enquiry_ref, "requested_by": requested_by}
    typer.echo(_line(_call("s47-request", "POST", f"/subjects/{subject}/s47-requests",
                           {k: v for k, v in body.items() if v is not None}, url, key)))


@app.command("s47-withdraw")
def s47_withdraw(request_id: str,
                 reason: Annotated[str, typer.Option(help="recorded_in_error, enquiry_concluded, no_longer_needed "
                                                          "or circumstances_changed.")],
                 url: Url = None, key: Key = None) -> None:
    """Withdraw an s47(9) request."""
    typer.echo(_line(_call("s47-withdraw", "POST", f"/s47-requests/{request_id}/withdraw", {"reason": reason},
                           url, key)))


@app.command("adult-at-risk")
def adult_at_risk(subject: Annotated[str, typer.Argument(help="The subject's linkage token.")],
                  reason: Annotated[str, typer.Option(help="at risk: care_act_s42_enquiry or dpa_sch1_para18_3; "
                                                           "not at risk: criteria_not_met.")],
                  at_risk: Annotated[bool, typer.Option("--at-risk/--not-at-risk")] = True,
                  reference: Annotated[str | None, typer.Option(help="A reference in your system (a short code).")]
                  = None,
                  url: Url = None, key: Key = None) -> None:
    """Record an adult-at-risk determination (Care Act 2014 s42(1); DPA 2018 Sch 1 para 18(3))."""
    body: dict[str, object] = {"at_risk": at_risk, "reason": reason}
    if reference is not None:
        body["reference"] = reference
    typer.echo(_line(_call("adult-at-risk", "PUT", f"/subjects/{subject}/adult-at-risk", body, url, key)))


@app.command("adult-at-risk-withdraw")
def adult_at_risk_withdraw(subject: str,
                           reason: Annotated[str, typer.Option(help="recorded_in_error, enquiry_concluded, "
                                                                    "no_longer_needed or circumstances_changed.")],
                           url: Url = None, key: Key = None) -> None:
    """Withdraw the adult-at-risk determination in force."""
    typer.echo(_line(_call("adult-at-risk-withdraw", "POST", f"/subjects/{subject}/adult-at-risk/withdraw",
                           {"reason": reason}, url, key)))


@app.command("determinations")
def determinations(subject: Annotated[str, typer.Argument(help="The child's linkage token.")],
                   url: Url = None, key: Key = None) -> None:
    """Every s47(9) request and adult-at-risk determination recorded about a child, in force or ended."""
    found = _call("determinations", "GET", f"/subjects/{subject}/determinations", None, url, key)
    typer.echo("kind\tid\tstate\tsays\trecorded by\trecorded")
    for view in found["determinations"]:  # type: ignore[attr-defined]
        typer.echo(_line(view))
