"""`mash-broker insight`: the partnership's performance framework (issue 17) from the audit log.

    mash-broker insight measures                                    # what is measured, in words
    mash-broker insight tables --measure referrals --by area        # disclosure-controlled (DfE rules)
    mash-broker insight tables --from-export audit.jsonl --exact    # the exact counts, reproduced from an export
    mash-broker insight demo-load --url http://127.0.0.1:8080       # the bench's fictitious mix and hub decisions

By default every table is printed as it may be shown outside the IG role (broker/insight/sdc.py: counts of 1 to 5
shown "c", secondary suppression, small areas merged). `--exact` prints the exact counts: it is for IG staff. Every
read of the live store is itself audited (admin_action insight.tables, or insight.exact for the exact counts).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from broker.errors import InputRejected

app = typer.Typer(help="Performance framework: measures computed from the audit log, under disclosure control.",
                  no_args_is_help=True)

UNUSABLE = 2


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(UNUSABLE)


def _subscriber_partner(protocol: Path | None) -> dict[str, str]:
    """Subscriber -> partner, from the protocol: how a delivery counts as feedback to a referring partner."""
    from broker.policy.compile import load_protocol

    path = protocol or Path(os.environ.get("MASH_PROTOCOL_FILE", "deploy/protocols/sample-partnership.yaml"))
    if not path.is_file():
        return {}
    return {name: s.partner for name, s in load_protocol(path, prove=False).subscribers.items() if s.partner}


@app.command()
def measures(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array.")] = False,
    file: Annotated[Path | None, typer.Option(help="A measures file (default schemas/measures.yaml).")] = None,
) -> None:
    """List the measures: id, name, what they break down by, and their definition in words."""
    from broker.insight.measures import load_measures

    try:
        found = load_measures(file)
    except InputRejected as e:
        raise _fail(str(e)) from None
    if as_json:
        typer.echo(json.dumps([{"id": m.id, "name": m.name, "definition": m.definition,
                                "numerator": m.numerator.words if m.numerator else None,
                                "denominator": m.denominator.words if m.denominator else None,
                                "breakdowns": list(m.breakdowns), "periods": list(m.periods),
                                "available": m.available, "why": m.unavailable_why, "target": m.target}
                               for m in found], indent=2))
        return
    for m in found:
        typer.echo(f"{m.id}: {m.name}{'' if m.available else ' (not available yet)'}")
        typer.echo(f"    {m.definition}")
        if not m.available:
            typer.echo(f"    why not: {m.unavailable_why}")
        typer.echo(f"    by: {', '.join(m.breakdowns)}; periods: {', '.join(m.periods)}")


@app.command()
def tables(
    from_export: Annotated[Path | None, typer.Option("--from-export", help="A JSON Lines audit export "
                                                     "(mash-broker audit export --format jsonl).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Data directory of the live audit store (MASH_DATA_DIR).")]
    = None,
    audit_url: Annotated[str | None, typer.Option(help="PostgreSQL URL of the audit store (MASH_AUDIT_URL).")]
    = None,
    measure: Annotated[list[str] | None, typer.Option(help="Measure id (repeat for several); default: every "
                                                      "measure that breaks down by --by.")] = None,
    by: Annotated[str, typer.Option(help="Rows: agency, source, event_type, outcome, area, school_urn, gp_ods, "
                                    "reason, subscriber, field.")] = "agency",
    period: Annotated[str, typer.Option(help="Columns: week, month, quarter, all, before_after (with "
                                        "--change-date) or a second breakdown.")] = "month",
    change_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD: with --period before_after.")] = None,
    protocol: Annotated[Path | None, typer.Option(help="Protocol file: which subscriber is which partner "
                                                  "(MASH_PROTOCOL_FILE).")] = None,
    exact: Annotated[bool, typer.Option("--exact", help="Exact counts, no disclosure control: IG only.")] = False,
    min_population: Annotated[int, typer.Option(envvar="MASH_INSIGHT_MIN_POPULATION", min=1,
                                                help="Hotspot rows (area, school, GP practice) smaller than this "
                                                "are merged into one.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array of tables.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV, one line per cell.")] = False,
) -> None:
    """Compute the measures from the audit store or an export, and print them (disclosure-controlled by default)."""
    from broker.insight.compute import ComputeError, compute_all
    from broker.insight.measures import default_measures
    from broker.insight.render import table_csv, table_dict
    from broker.insight.sdc import suppress
    from broker.insight.source import records_from_export, records_from_store

    if as_json and as_csv:
        raise _fail("--json and --csv: choose one")
    framework = default_measures()
    try:
        for m in measure or ():
            framework.by_id(m)
        if from_export is not None:
            records = records_from_export(from_export)
        else:
            store = _store(data_dir, audit_url)
            records = records_from_store(store)
            _audit_read(store, exact, by, period, measure or [])
        found = compute_all(records, framework, by=by, across=period, change_date=change_date,
                            subscriber_partner=_subscriber_partner(protocol), only=measure or ())
    except (InputRejected, ComputeError) as e:
        raise _fail(str(e)) from None
    shown: list[Any] = found
    if not exact and period not in ("month", "quarter", "all"):
        shown = [suppress(t, min_population=min_population) for t in found]
    elif not exact:  # as the page publishes them: its linked tables protected together
        from broker.web.insight_data import View, published_tables

        shown = published_tables(records, framework, View(by, period), subscriber_partner=_subscriber_partner(
            protocol), only=measure or (), min_population=min_population)
    if as_json:
        typer.echo(json.dumps([table_dict(t) for t in shown], indent=1))
    elif as_csv:
        for i, t in enumerate(shown):
            text = table_csv(t)
            sys.stdout.write(text if i == 0 else text.split("\n", 1)[1])
    else:
        _print(shown, exact)


def _store(data_dir: Path | None, audit_url: str | None) -> Any:
    from broker.audit.store import open_audit_store

    directory = data_dir or Path(os.environ.get("MASH_DATA_DIR", "data"))
    if audit_url is None and not (directory / "audit.sqlite").is_file() and not os.environ.get("MASH_AUDIT_URL"):
        raise InputRejected(f"no audit store in {directory.name or directory} (give --data-dir, or --from-export)")
    return open_audit_store(directory, audit_url or os.environ.get("MASH_AUDIT_URL"))


def _audit_read(store: Any, exact: bool, by: str, period: str, measure: list[str]) -> None:
    """Every read of the live store is recorded (an export of the measures): who, exact or not, and the breakdown;
    never a number."""
    from broker.access.principal import cli_actor

    target = f"by:{by}:{period}" if by.isidentifier() and period.isidentifier() else "by:other"
    store.log("admin_action", actor=cli_actor(), action="insight.exact" if exact else "insight.tables",
              target=target[:200], count=len(measure) or None)


def _cell_text(row: dict[str, Any], column: str) -> str:
    """A count, with its rate when it has a number for one ("c" and "x" rates add nothing to a "c" cell)."""
    rate = (row.get("rates") or {}).get(column)
    return f"{row['cells'][column]}" + (f" ({rate}%)" if isinstance(rate, int | float) else "")


def _print(shown: list[Any], exact: bool) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    from broker.insight.render import table_dict

    console = Console() if sys.stdout.isatty() else Console(width=400)
    for t in shown:
        d = table_dict(t)
        console.print(f"[bold]{d['title']}[/bold] ({d['measure']}) by {d['rows_by']}, {d['columns_by']}"
                      + (" - EXACT, IG only" if exact else ""))
        out = RichTable(*[d["rows_by"], *d["columns"]])
        for row in d["rows"]:
            out.add_row(row["row"], *[_cell_text(row, c) for c in d["columns"]])
        console.print(out)


@app.command("demo-load")
def demo_load(
    url: Annotated[str, typer.Option(help="The running broker (mash-broker run --dev).")] = "http://127.0.0.1:8080",
    data_dir: Annotated[Path | None, typer.Option(help="Its data directory: dev-credentials.json and the hub's "
                                                  "development subscriber key (MASH_DATA_DIR).")] = None,
    records: Annotated[int, typer.Option(min=1, help="Bodies of the bench's fictitious mix to post.")] = 300,
    rise: Annotated[str | None, typer.Option(help="A postcode district (ZZ1..ZZ12) to give a synthetic rise in "
                                             "contacts in the latest weeks (for the hotspot detector).")] = None,
) -> None:
    """Load the bench's fictitious mix of records and the hub's decisions on them into a running broker, so the
    measures (and /insight) have something to show. Fictitious data only; never point it at a live broker."""
    from broker import aio
    from broker.bench.demo import DemoError, load_demo

    directory = data_dir or Path(os.environ.get("MASH_DATA_DIR", "data"))
    try:
        summary = aio.run(load_demo(url, directory, records=records, rise=rise))
    except (DemoError, InputRejected) as e:
        raise _fail(str(e)) from None
    typer.echo(json.dumps(summary, indent=1))
