"""`mash-broker bench`: end-to-end events/s and latency through real Kafka, the bare Kafka baseline, stage costs."""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

app = typer.Typer(help="Benchmark the pipeline end to end on the embedded broker (or KAFKA_BOOTSTRAP_SERVERS).")

TARGETS = {"ratio_to_baseline": 0.5, "p99_ms_at_1000_per_s": 50.0, "worker_rss_mb": 250.0}


def _profiler(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        from pyinstrument import Profiler
    except ImportError:
        raise typer.BadParameter("--profile needs pyinstrument (pip install pyinstrument)") from None

    def run(work: Any) -> None:
        profiler = Profiler(interval=0.0005)
        profiler.start()
        work()
        profiler.stop()
        path.write_text(profiler.output_html() if path.suffix == ".html" else profiler.output_text(color=False))

    return run


@app.callback(invoke_without_command=True)
def bench(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(min=10, help="Canonical events to push through the pipeline.")] = 2000,
    workers: Annotated[int, typer.Option(min=1, max=2, help="Share-worker processes (`mash-broker worker`).")] = 1,
    rate: Annotated[float, typer.Option(min=0, help="Offered load in events/s; 0: as fast as intake takes them.")] = 0,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="HTTP requests in flight.")] = 16,
    batch: Annotated[int, typer.Option(min=1, max=200, help="Records per request (a Bundle, an HL7 v2 batch, a "
                                       "CTF/CIN file with several children, ...); 1: one record per request.")] = 1,
    warmup: Annotated[int, typer.Option(min=1, help="Records sent before timing starts (workers joined, every "
                                        "fictitious child's data keys made).")] = 600,
    stages: Annotated[bool, typer.Option(help="Also time the pure stages and the encryption stage.")] = True,
    stage_records: Annotated[int, typer.Option(min=10, help="Native records in the stage timing.")] = 600,
    baseline: Annotated[bool, typer.Option(help="Also run the bare Kafka baseline.")] = True,
    profile: Annotated[Path | None, typer.Option(help="Write a pyinstrument profile of the pure stages "
                                                 "(.html or text).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for machines.")] = False,
    workdir: Annotated[Path | None, typer.Option(help="Keep the run's data, keys and logs here.")] = None,
) -> None:
    """Run the benchmark: intake over HTTP to delivery topics, with the sample protocol's five subscribers."""
    if ctx.invoked_subcommand is not None:
        return
    from broker.bench.e2e import baseline_run, pipeline_run
    from broker.bench.records import usable_formats
    from broker.bench.stages import install_protocol, measure_stages, stage_kit
    from broker.kafka.embedded import EmbeddedKafka

    console = Console(stderr=True, quiet=as_json)
    formats, skipped, per_record = usable_formats()
    if not formats:
        raise typer.Exit(code=_fail(console, "no registered adapter accepted its synthetic record"))
    for reason in skipped:
        console.print(f"[yellow]left out of the mix:[/yellow] {reason}")
    tmp = tempfile.TemporaryDirectory(prefix="mash-bench-") if workdir is None else None
    root = Path(tmp.name) if tmp else workdir
    root.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"formats": [f.name for f in formats], "left_out": skipped,
                              "events_per_record": per_record, "workers": workers, "offered_rate": rate or "max",
                              "batch": batch, "warmup_records": warmup}
    embedded = None
    try:
        if stages:
            with console.status("timing the pure stages"), stage_kit(root / "stages") as kit:
                report["stages"] = measure_stages(kit, formats, stage_records, _profiler(profile)).to_dict()
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
        if not bootstrap:
            embedded = EmbeddedKafka().start()
            bootstrap = embedded.bootstrap_servers
        report["kafka"] = "embedded (Tansu)" if embedded else "external"
        protocol_file, _ = install_protocol(root / "run")
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, disable=as_json) as bar:
            tasks: dict[str, Any] = {}

            def progress(what: str, advance: int, total: int) -> None:
                if what not in tasks:
                    tasks[what] = bar.add_task(f"events {what}", total=total)
                bar.update(tasks[what], advance=advance, total=total)

            run = pipeline_run(bootstrap, root / "run", protocol_file, formats, events=events, workers=workers,
                               rate=rate, concurrency=concurrency, events_per_record=per_record, warmup=warmup,
                               batch=batch, kafka_pid=embedded.pid if embedded else None, progress=progress)
        report["pipeline"] = run.to_dict()
        if baseline:
            size = report.get("stages", {}).get("mean_protected_event_bytes") or 2500
            with console.status("bare Kafka baseline"):
                # The baseline: one message of the protected event's size per event.
                report["baseline"] = baseline_run(bootstrap, run.events, size, rate)
                # And the pipeline's own traffic (events, deliveries, audit): the time bare Kafka needs to move
                # exactly those messages, against the time the pipeline took.
                messages, mean_bytes = run.traffic()
                if messages:
                    report["traffic_baseline"] = baseline_run(bootstrap, messages, mean_bytes, 0)
                    bare_s = messages / report["traffic_baseline"]["messages_per_s"]
                    report["ratio_to_traffic_baseline"] = round(bare_s / run.seconds, 3)
            report["ratio_to_baseline"] = round(run.events_per_s / report["baseline"]["messages_per_s"], 3)
            if "traffic_baseline" in report:
                # The most any implementation moving this traffic could reach: processing free, only the events,
                # deliveries and audit messages left to go through the same Kafka.
                report["ratio_ceiling"] = round(run.events / bare_s / report["baseline"]["messages_per_s"], 3)
    finally:
        if embedded is not None:
            embedded.stop()
        if tmp is not None:
            tmp.cleanup()
    report["targets"] = TARGETS
    if as_json:
        typer.echo(json.dumps(report, indent=1, default=_nan))
    else:
        _print(console, report)


@app.command()
def growth(
    blocks: Annotated[int, typer.Option(min=1, help="Blocks of messages; one row each.")] = 4,
    per_block: Annotated[int, typer.Option(min=10, help="Messages per block, one per produce request.")] = 4000,
    size: Annotated[int, typer.Option(min=1, help="Message bytes (a protected event is about 2,500).")] = 2500,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for machines.")] = False,
) -> None:
    """How the Kafka's cost per message grows as one partition fills: a reader follows the tail while single-message
    batches arrive. Flat rows: the broker can be soaked; rising rows: it slows as it fills."""
    from dataclasses import asdict

    from broker import aio
    from broker.bench.growth import follow_tail
    from broker.kafka.embedded import EmbeddedKafka

    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    embedded = None if bootstrap else EmbeddedKafka().start()
    console = Console(stderr=True, quiet=as_json)
    try:
        with console.status(f"{blocks} blocks of {per_block} messages"):
            rows = aio.run(follow_tail(bootstrap or embedded.bootstrap_servers, blocks=blocks, per_block=per_block,
                                       size=size, broker_pid=embedded.pid if embedded else None))
    except RuntimeError as exc:  # the broker stalled
        raise typer.Exit(code=_fail(console, str(exc))) from None
    finally:
        if embedded is not None:
            embedded.stop()
    kafka = "embedded (Tansu)" if embedded else "external"
    if as_json:
        typer.echo(json.dumps({"kafka": kafka, "blocks": [asdict(r) for r in rows]}, indent=1))
        return
    table = Table("messages held", "messages/s", "broker CPU ms per message",
                  title=f"{kafka} Kafka: one partition filling with single-message batches, its tail followed")
    for r in rows:
        table.add_row(str(r.stored), f"{r.messages_per_s:.0f}",
                      "n/a" if r.broker_cpu_ms_per_message is None else f"{r.broker_cpu_ms_per_message:.2f}")
    Console().print(table)


def _nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else str(value)


def _fail(console: Console, message: str) -> int:
    console.print(f"[red]{message}[/red]")
    return 1


def _print(console: Console, r: dict[str, Any]) -> None:
    console = Console()
    p = r["pipeline"]
    table = Table("measure", "value", title=f"mash-broker bench ({r['kafka']} Kafka, {r['workers']} worker(s), "
                                           f"offered {r['offered_rate']} events/s, {r['batch']} record(s) per request)")
    table.add_row("events / records / requests", f"{p['events']} / {p['records']} / {p['requests']}")
    table.add_row("pipeline events/s", f"{p['events_per_s']:.0f}")
    if "baseline" in r:
        table.add_row("bare Kafka messages/s", f"{r['baseline']['messages_per_s']}")
        table.add_row("ratio (target >= 0.5)", f"{r['ratio_to_baseline']:.3f}")
        if "traffic_baseline" in r:
            t = r["traffic_baseline"]
            table.add_row("pipeline's Kafka traffic (messages, mean bytes)", f"{t['messages']}, {t['message_bytes']}")
            table.add_row("bare Kafka time for that traffic / pipeline time", f"{r['ratio_to_traffic_baseline']:.3f}")
            table.add_row("ratio ceiling (that traffic alone, processing free)", f"{r['ratio_ceiling']:.3f}")
        b = r["baseline"]["latency_ms"]
        table.add_row("bare Kafka latency p50/p95/p99 ms", f"{b['p50']:.1f} / {b['p95']:.1f} / {b['p99']:.1f}")
    lat = p["latency_ms"]
    table.add_row("intake->delivery p50/p95/p99 ms", f"{lat['p50']:.1f} / {lat['p95']:.1f} / {lat['p99']:.1f}")
    table.add_row("deliveries / duplicates", f"{p['deliveries']} / {p['duplicates']}")
    table.add_row("events not decided in time", str(p["missing_decisions"]))
    table.add_row("CPU ms per event", ", ".join(f"{k} {v:.2f}" for k, v in p["cpu_ms_per_event"].items()))
    for name, mem in p["memory_mb"].items():
        table.add_row(f"RSS {name} MB start/peak/end (growth after the first quarter)",
                      f"{mem['start']} / {mem['peak']} / {mem['end']} ({mem['growth_after_quarter']:+})")
    console.print(table)
    if "stages" in r:
        s = r["stages"]
        st = Table("stage", "us per event", title=f"pure stages over {s['events']} events ({s['records']} records)")
        for stage, us in s["us_per_event"].items():
            st.add_row(stage, f"{us:.1f}")
        st.add_row("events/s with encryption", str(s["events_per_s_with_encryption"]))
        st.add_row("events/s without encryption", str(s["events_per_s_without_encryption"]))
        console.print(st)
