"""`mash-broker hub decide`: a small hub records its MASH decision without a hub application of its own.

It posts to the running service's POST /v1/hub/decisions with a hub_decision key (`--key` or MASH_API_KEY), so the
decision is checked, published and audited exactly as a hub application's. The rationale is read from a file
(`--rationale-file`), never taken on the command line: a shell's history and the process list would keep it. The
whole decision may instead be given as JSON (`--file`), in the API's shape (README, "The hub's decision loop").

Exit codes: 0 recorded (one line per event: id and type), 1 refused (the service's value-free reason), 2 unusable.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from broker.cli.service_call import call_service

app = typer.Typer(help="The MASH hub's own records: its decisions on contacts and referrals.", no_args_is_help=True)

Many = Annotated[list[str] | None, typer.Option()]


def _action(text: str) -> dict[str, str]:
    """`partner:action[:due_by]`, e.g. oakfield-primary:attend_strategy_discussion:2026-12-01T10:00:00Z."""
    partner, _, rest = text.partition(":")
    action, _, due = rest.partition(":")
    if not partner or not action:
        typer.echo("hub decide: --action is partner:action[:due_by]", err=True)
        raise typer.Exit(2)
    return {"partner": partner, "action": action, **({"due_by": due} if due else {})}


def _read(path: Path, what: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        typer.echo(f"hub decide: cannot read the {what} file ({type(exc).__name__})", err=True)
        raise typer.Exit(2) from None


@app.command()
def decide(
    file: Annotated[Path | None, typer.Option(help="The whole decision as JSON (the API's body); "
                                                   "the options below are then not used.")] = None,
    reference: Annotated[str | None, typer.Option(help="The hub's own id of the decision.")] = None,
    subject_token: Annotated[str | None, typer.Option(help="The child, by the token on the hub's deliveries.")]
    = None,
    concern: Many = None,
    rag: Annotated[str | None, typer.Option(help="red, amber or green.")] = None,
    outcome: Annotated[str | None, typer.Option(
        help="no_further_action, information_and_advice, early_help, section_17_assessment, "
             "strategy_discussion_section_47, police_action or other.")] = None,
    outcome_other: Annotated[str | None, typer.Option(help="With outcome other: the code.")] = None,
    lead_partner: Annotated[str | None, typer.Option(help="The lead partner's id.")] = None,
    lead_role: Annotated[str | None, typer.Option(help="The lead professional's role code.")] = None,
    lead_contact: Annotated[str | None, typer.Option(help="A work phone or mailbox.")] = None,
    contributor: Many = None,
    referrer: Many = None,
    action: Many = None,
    rationale_file: Annotated[Path | None, typer.Option(help="The rationale, as a text file.")] = None,
    decided_at: Annotated[str | None, typer.Option(help="ISO 8601 with a time zone; default now.")] = None,
    url: Annotated[str | None, typer.Option(help="The service (default http://MASH_HOST:MASH_PORT).")] = None,
    key: Annotated[str | None, typer.Option(help="A hub_decision API key (MASH_API_KEY).")] = None,
) -> None:
    """Record a MASH decision: --concern (event ids), --contributor and --referrer (partner ids) and --action
    (partner:action[:due_by]) repeat."""
    if file is not None:
        try:
            body: dict[str, Any] = json.loads(_read(file, "decision"))
        except json.JSONDecodeError:
            typer.echo("hub decide: the decision file is not JSON", err=True)
            raise typer.Exit(2) from None
    else:
        missing = [name for name, value in (("--reference", reference), ("--subject-token", subject_token),
                                            ("--concern", concern), ("--rag", rag), ("--outcome", outcome),
                                            ("--lead-partner", lead_partner)) if not value]
        if missing:
            typer.echo(f"hub decide: give {', '.join(missing)} (or --file)", err=True)
            raise typer.Exit(2)
        lead = {"partner": lead_partner, "professional_role": lead_role, "professional_contact": lead_contact}
        body = {"reference": reference, "subject_token": subject_token, "concerns": concern, "rag": rag,
                "outcome": outcome, "outcome_other": outcome_other,
                "lead": {k: v for k, v in lead.items() if v is not None},
                "contributing_partners": contributor or [], "referring_partners": referrer or [],
                "actions": [_action(a) for a in action or ()],
                "rationale": _read(rationale_file, "rationale").strip() if rationale_file else None,
                "decided_at": decided_at or datetime.now(UTC).isoformat(timespec="seconds")}
        body = {k: v for k, v in body.items() if v is not None}
    answer = call_service("hub decide", "POST", "/v1/hub/decisions", body, url=url, key=key,
                          key_hint="a hub_decision key")
    for event in answer["events"]:
        typer.echo(f"{event['event_id']}\t{event['event_type']}")
