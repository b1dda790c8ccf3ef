"""`mash-broker decisions`: the referrals waiting for a recorded human decision, and a decision on one.

`list` reads the referral register (SQLite in the data directory, or MASH_STORE_URL) as an operator on the host.
`decide` goes through the running service's API with a decision_maker key (`--key` or MASH_API_KEY): the decision
is a disclosure the service makes (it reads the event back from Kafka, seals and delivers it), and the API is
where the decider's partner is checked and the decision audited under their credential.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from broker.config import Settings

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

    settings = Settings()
    folder = data_dir or settings.data_dir
    if not settings.store_url and not (folder / ReferralRegister.FILE).is_file():
        typer.echo("no referral register in the data directory", err=True)
        raise typer.Exit(1)
    register = ReferralRegister(folder / ReferralRegister.FILE, settings.store_url)
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
    import httpx

    settings = Settings()
    key = key or os.environ.get("MASH_API_KEY")
    if not key:
        typer.echo("decisions decide: give --key or set MASH_API_KEY (a decision_maker key)", err=True)
        raise typer.Exit(2)
    base = url or f"http://{settings.host}:{settings.port}"
    body = {"decision": decision, "reason": reason, "withhold_classifications": withhold_classification or [],
            "withhold_paths": withhold_path or []}
    try:
        r = httpx.post(f"{base}/v1/decisions/referrals/{referral_id}", json=body, timeout=60,
                       headers={"Authorization": f"Bearer {key}"})
    except httpx.HTTPError as exc:
        typer.echo(f"decisions decide: the service did not answer ({type(exc).__name__})", err=True)
        raise typer.Exit(2) from None
    if r.status_code != 200:
        detail = r.json().get("detail") if r.headers.get("content-type", "").startswith("application/json") else ""
        typer.echo(f"refused ({r.status_code}): {detail}", err=True)
        raise typer.Exit(1)
    answer = r.json()
    typer.echo(f"{answer['referral_id']}\t{answer['status']}\t{'delivered' if answer['delivered'] else 'not sent'}"
               f"\t{answer['delivery']}")
