"""`mash-broker consent`: the first consent register's records, for IG review.

`v1-list` reads the consent register (SQLite in the data directory, or MASH_STORE_URL) as an operator on the host:
the children whose records came from the first register, by linkage token, with their kinds, states and dates
(never a name). `v1-review` records a review through the running service's API with an ig_auditor or admin key
(`--key` or MASH_API_KEY): the API is where the reviewer's credential is checked and the review audited.
What a migrated "no" may have been in law, and how it is read until reviewed: broker/policy/consent_review.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broker.cli.service_call import call_service, open_local_register
from broker.policy.consent_review import OUTCOMES

app = typer.Typer(help="The first consent register's records: list them for IG review, record a review.",
                  no_args_is_help=True)


@app.command("v1-list")
def v1_list(include_reviewed: Annotated[bool, typer.Option("--all", help="Also the reviewed and the non-refusals.")]
            = False,
            data_dir: Annotated[Path | None, typer.Option(help="Data directory (MASH_DATA_DIR).")] = None) -> None:
    """One tab-separated line per child: token, awaiting review?, the migrated records, the review if any."""
    from broker.stores.consent import ConsentRegister

    register = open_local_register(ConsentRegister, ConsentRegister.FILE, "consent", data_dir)
    try:
        cases, waiting = register.migrated_cases(include_reviewed=include_reviewed), register.awaiting_review()
    finally:
        register.close()
    typer.echo(f"{waiting} awaiting review (read the stricter way until reviewed: outcomes {', '.join(OUTCOMES)})")
    typer.echo("token\tawaiting\tmigrated records\treview")
    for c in cases:
        records = ",".join(f"{r.kind}={r.state}@{r.recorded_on or '-'}" for r in c.records) or "-"
        review = f"{c.outcome} on {c.reviewed_on} by {c.reviewed_by}" if c.outcome else "-"
        typer.echo("\t".join((c.subject, "yes" if c.awaiting else "no", records, review)))


@app.command("v1-review")
def v1_review(token: str,
              outcome: Annotated[str, typer.Option(help=f"One of: {', '.join(OUTCOMES)}.")],
              reviewed_on: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today).")] = None,
              url: Annotated[str | None, typer.Option(help="The service (default http://MASH_HOST:MASH_PORT).")] = None,
              key: Annotated[str | None, typer.Option(help="An ig_auditor or admin API key (MASH_API_KEY).")] = None,
              ) -> None:
    """Record one child's review through the service's API; exit 0 recorded, 1 refused (the reason), 2 unusable."""

    if outcome not in OUTCOMES:
        typer.echo(f"consent v1-review: --outcome must be one of {', '.join(OUTCOMES)}", err=True)
        raise typer.Exit(2)
    body = {"outcome": outcome, **({"reviewed_on": reviewed_on} if reviewed_on else {})}
    answer = call_service("consent v1-review", "POST", f"/v1/ig/consent/v1-records/{token}/review", body, url=url,
                          key=key, key_hint="an ig_auditor or admin key", timeout=30)
    now = ",".join(f"{x['kind']}={x['state']}" for x in answer["records_now"] if x["subject"] == "child") or "-"
    typer.echo(f"{answer['subject']}\t{answer['review']['outcome']}\tthe child's records now: {now}")
