"""`mash-broker bench`: end-to-end events/s and latency through real Kafka, the bare Kafka baseline, stage costs."""

from __future__ import annotations

import contextlib
import json
import math
import signal
import sys
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from broker.bench.targets import verdicts

app = typer.Typer(help="Benchmark the pipeline end to end: on a single-node Apache Kafka started for the run (the "
                  "default), the embedded Tansu (--embedded) or a running cluster (--bootstrap).")

SOAK_IDLE_S = 120.0  # a soak's final wait gives up after this long with nothing decided: a stall, reported as such
SOAK_DRAIN_S = 600.0  # and after this long in all: a soak that is that far behind has failed, and says so


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


EmbeddedOpt = Annotated[bool, typer.Option("--embedded", help="Run on the embedded Tansu (development fallback) "
                                           "instead of a single-node Apache Kafka started for the run.")]
BootstrapOpt = Annotated[str | None, typer.Option("--bootstrap", envvar="KAFKA_BOOTSTRAP_SERVERS",
                                                  help="Run on this running Kafka cluster (host:port,...).")]
KafkaDirOpt = Annotated[Path | None, typer.Option(help="With --bootstrap: the --data-dir of its `mash-broker kafka "
                                                  "run`, so each node's JVM (node-<id>/pid) is counted.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON document on stdout, for machines.")]
WorkdirOpt = Annotated[Path | None, typer.Option(help="Keep the run's data, keys, logs (and Kafka) here.")]


@contextlib.contextmanager
def _bench_root(workdir: Path | None) -> Iterator[Path]:
    if workdir is not None:
        workdir.mkdir(parents=True, exist_ok=True)
        yield workdir
        return
    with tempfile.TemporaryDirectory(prefix="mash-bench-") as tmp:
        yield Path(tmp)


def _kafka_options(console: Console, embedded: bool, bootstrap: str | None, kafka_data_dir: Path | None) -> str:
    from broker.bench.cluster import BenchKafkaError, choose_kafka

    try:
        return choose_kafka(embedded=embedded, bootstrap=bootstrap, kafka_data_dir=kafka_data_dir)
    except BenchKafkaError as exc:
        raise typer.Exit(code=_fail(console, str(exc), 2)) from None


@contextlib.contextmanager
def _kafka(console: Console, root: Path, embedded: bool, bootstrap: str | None,
           kafka_data_dir: Path | None) -> Iterator[Any]:
    """The run's Kafka (broker.bench.cluster); unusable options or no Apache Kafka: one plain line, exit 2."""
    from broker.bench.cluster import BenchKafkaError, bench_kafka
    from broker.kafka.apache import KafkaUnavailable

    choice = _kafka_options(console, embedded, bootstrap, kafka_data_dir)
    try:
        with console.status("starting Kafka"):
            context = bench_kafka(choice, root, bootstrap=bootstrap, kafka_data_dir=kafka_data_dir)
            kafka = context.__enter__()
    except BenchKafkaError as exc:
        raise typer.Exit(code=_fail(console, str(exc), 2)) from None
    except KafkaUnavailable as exc:
        raise typer.Exit(code=_fail(console, f"Apache Kafka unavailable: {exc} (--embedded runs on the embedded "
                                    "Tansu; --bootstrap on a running cluster)", 2)) from None
    try:
        yield kafka
    except BaseException:
        if not context.__exit__(*sys.exc_info()):
            raise
    else:
        context.__exit__(None, None, None)


def _progress_bar(console: Console, disable: bool) -> tuple[Progress, Callable[[str, int, int], None]]:
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=console, disable=disable)
    tasks: dict[str, Any] = {}

    def progress(what: str, advance: int, total: int) -> None:
        if what not in tasks:
            tasks[what] = bar.add_task(f"events {what}", total=total)
        bar.update(tasks[what], advance=advance, total=total)

    return bar, progress


def _scenario(console: Console, kafka: Any, root: Path, formats: list[Any], per_record: dict[str, int], *,
              events: int, workers: int, rate: float, concurrency: int, batch: int, warmup: int, baseline: bool,
              mean_bytes: int, quiet: bool, watch: Any = None, idle_timeout: float | None = None,
              final_wait: float | None = None, duration: float | None = None) -> dict[str, Any]:
    """One pipeline run, with its two bare baselines when asked: the report's pipeline, baseline and ratio keys."""
    from broker.bench.e2e import baseline_run, pipeline_run
    from broker.bench.stages import install_protocol

    report: dict[str, Any] = {"workers": workers, "offered_rate": rate or "max", "batch": batch,
                              "warmup_records": warmup}
    protocol_file, _ = install_protocol(root)
    bar, progress = _progress_bar(console, disable=quiet or watch is not None)
    with bar:
        run = pipeline_run(kafka.bootstrap, root, protocol_file, formats, events=events, workers=workers, rate=rate,
                           concurrency=concurrency, events_per_record=per_record, warmup=warmup, batch=batch,
                           kafka_pids=kafka.pids, progress=progress, watch=watch, idle_timeout=idle_timeout,
                           final_wait=final_wait, duration=duration)
    report["pipeline"] = run.to_dict()
    if baseline:
        with console.status("bare Kafka baseline"):
            # The baseline: one message of the protected event's size per event, at the same offered rate.
            report["baseline"] = baseline_run(kafka.bootstrap, run.events, mean_bytes, rate)
            # And the pipeline's own traffic (events, deliveries, audit): the time bare Kafka needs to move exactly
            # those messages, against the time the pipeline took.
            messages, traffic_bytes = run.traffic()
            if messages:
                report["traffic_baseline"] = baseline_run(kafka.bootstrap, messages, traffic_bytes, 0)
                bare_s = messages / report["traffic_baseline"]["messages_per_s"]
                report["ratio_to_traffic_baseline"] = round(bare_s / run.seconds, 3)
        report["ratio_to_baseline"] = round(run.events_per_s / report["baseline"]["messages_per_s"], 3)
        if "traffic_baseline" in report:
            # The most any implementation moving this traffic could reach: processing free, only the events,
            # deliveries and audit messages left to go through the same Kafka.
            report["ratio_ceiling"] = round(run.events / bare_s / report["baseline"]["messages_per_s"], 3)
    return report


def _mix(console: Console) -> tuple[list[Any], list[str], dict[str, int]]:
    from broker.bench.records import usable_formats

    formats, skipped, per_record = usable_formats()
    if not formats:
        raise typer.Exit(code=_fail(console, "no registered adapter accepted its synthetic record"))
    for reason in skipped:
        console.print(f"[yellow]left out of the mix:[/yellow] {reason}")
    return formats, skipped, per_record


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
    baseline: Annotated[bool, typer.Option(help="Also run the bare Kafka baselines.")] = True,
    profile: Annotated[Path | None, typer.Option(help="Write a pyinstrument profile of the pure stages "
                                                 "(.html or text).")] = None,
    soak: Annotated[str | None, typer.Option(help="Soak for this long (1h, 30m, 600s) at --rate instead of a fixed "
                                             "--events: a row of progress, latency, RSS and CPU every "
                                             "--report-every seconds, then whether memory stayed flat and any "
                                             "stall. No stages or baselines.")] = None,
    report_every: Annotated[float, typer.Option(min=1, help="Seconds between a soak's rows.")] = 60.0,
    embedded: EmbeddedOpt = False,
    bootstrap: BootstrapOpt = None,
    kafka_data_dir: KafkaDirOpt = None,
    as_json: JsonOpt = False,
    json_file: Annotated[Path | None, typer.Option(help="Also write the JSON document to this file (a long soak's "
                                                   "record, beside its printed tables).")] = None,
    workdir: WorkdirOpt = None,
) -> None:
    """Run the benchmark: intake over HTTP to delivery topics, with the sample protocol's five subscribers."""
    if ctx.invoked_subcommand is not None:
        return
    from broker.bench.e2e import Watch
    from broker.bench.soak import parse_duration
    from broker.bench.stages import measure_stages, stage_kit

    console = Console(stderr=True, quiet=as_json)
    soak_s = None
    if soak is not None:
        try:
            soak_s = parse_duration(soak)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--soak") from None
        if rate <= 0:
            raise typer.BadParameter("a soak needs a steady offered load: give --rate (e.g. --rate 100)",
                                     param_hint="--rate")
        events, stages, baseline = max(10, math.ceil(rate * soak_s)), False, False
    _kafka_options(console, embedded, bootstrap, kafka_data_dir)  # before any work: contradictory options fail now
    formats, skipped, per_record = _mix(console)
    report: dict[str, Any] = {"command": " ".join(["mash-broker", *sys.argv[1:]]), "started": _now(),
                              "formats": [f.name for f in formats], "left_out": skipped,
                              "events_per_record": per_record}
    rows = Console(stderr=True)  # a soak's rows go to stderr even with --json: a long run shows how it goes
    watch = Watch(report_every, lambda row: rows.print(soak_line(row), highlight=False)) if soak_s else None
    # SIGTERM (a soak stopped with kill PID) unwinds like Ctrl-C: the service and workers are stopped before the
    # Kafka they talk to, instead of all at once by their parent-death signal.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with _bench_root(workdir) as root:
            if stages:
                with console.status("timing the pure stages"), stage_kit(root / "stages") as kit:
                    report["stages"] = measure_stages(kit, formats, stage_records, _profiler(profile)).to_dict()
            with _kafka(console, root, embedded, bootstrap, kafka_data_dir) as kafka:
                report["kafka"] = kafka.kind
                report |= _scenario(console, kafka, root / "run", formats, per_record, events=events,
                                    workers=workers, rate=rate, concurrency=concurrency, batch=batch, warmup=warmup,
                                    baseline=baseline,
                                    mean_bytes=report.get("stages", {}).get("mean_protected_event_bytes") or 2500,
                                    quiet=as_json, watch=watch, idle_timeout=SOAK_IDLE_S if soak_s else None,
                                    final_wait=SOAK_DRAIN_S if soak_s else None, duration=soak_s)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if soak_s is not None:
        report["soak"] = soak_summary(report["pipeline"], soak_s, rate)
    report["ended"], report["targets"] = _now(), verdicts(report)
    if json_file is not None:
        json_file.write_text(json.dumps(report, indent=1, default=_nan) + "\n")
    if as_json:
        typer.echo(json.dumps(report, indent=1, default=_nan))
    else:
        _print(console, report)
    if soak_s is not None and not report["soak"]["passed"]:
        raise typer.Exit(code=1)


def soak_summary(pipeline: dict[str, Any], seconds: float, rate: float) -> dict[str, Any]:
    """The soak's verdict from its pipeline report: memory flat for every process, no stall, nothing undecided."""
    memory = {name: {k: m[k] for k in ("start", "quarter", "peak", "end", "slope_mb_per_hour", "flat")}
              for name, m in pipeline["memory_mb"].items()}
    flat = all(m["flat"] for m in memory.values())
    stalled = bool(pipeline["stalls"])
    # Kept up: intake took what was offered (within 5%) and every accepted event was decided in the end. What intake
    # took counts the repeats too: an event id answered with a 202 a second time (the mix's records recur in a long
    # run) was taken and decided again, only never re-delivered, so it is load kept up with, not load refused.
    offered = rate * seconds
    taken = pipeline["events"] + pipeline.get("repeated_event_ids", 0)
    kept_up = taken >= 0.95 * offered and pipeline["missing_decisions"] == 0
    return {"duration_s": seconds, "rate": rate, "offered_events": round(offered), "sending_s": pipeline["sending_s"],
            "memory": memory, "memory_flat": flat, "stalls": pipeline["stalls"], "stalled": stalled,
            "kept_up": kept_up, "passed": flat and not stalled and kept_up and pipeline["duplicates"] == 0
            and pipeline["http_errors"] == 0}


def soak_line(row: dict[str, Any]) -> str:
    """One soak row as a plain line (for a log file)."""
    t = int(row["t_s"])
    lat = row["latency_ms"]

    def ms(v: Any) -> str:
        return "-" if v is None else f"{v:.0f}"

    return (f"soak {t // 3600:02d}:{t % 3600 // 60:02d}:{t % 60:02d}  offered {row['offered']}  accepted "
            f"{row['accepted']}  decided "
            f"{row['decided']}  behind {row['behind']}  http errors {row['http_errors']}  p50/p99/max "
            f"{ms(lat['p50'])}/{ms(lat['p99'])}/{ms(lat['max'])} ms  RSS MB "
            + ", ".join(f"{k} {v:.1f}" for k, v in row["rss_mb"].items()) + "  CPU % "
            + ", ".join(f"{k} {v:.1f}" for k, v in row["cpu_percent"].items()))


@app.command()
def growth(
    blocks: Annotated[int, typer.Option(min=1, help="Blocks of messages; one row each.")] = 4,
    per_block: Annotated[int, typer.Option(min=10, help="Messages per block, one per produce request.")] = 4000,
    size: Annotated[int, typer.Option(min=1, help="Message bytes (a protected event is about 2,500).")] = 2500,
    embedded: EmbeddedOpt = False,
    bootstrap: BootstrapOpt = None,
    kafka_data_dir: KafkaDirOpt = None,
    as_json: JsonOpt = False,
    workdir: WorkdirOpt = None,
) -> None:
    """How the Kafka's cost per message grows as one partition fills: a reader follows the tail while single-message
    batches arrive. Flat rows: the broker can be soaked; rising rows: it slows as it fills."""
    from dataclasses import asdict

    from broker import aio
    from broker.bench.growth import follow_tail

    console = Console(stderr=True, quiet=as_json)
    with _bench_root(workdir) as root, _kafka(console, root, embedded, bootstrap, kafka_data_dir) as cluster:
        # the broker's CPU per message is that of its one process; on several nodes it is left out
        pid = next(iter(cluster.pids.values())) if len(cluster.pids) == 1 else None
        try:
            with console.status(f"{blocks} blocks of {per_block} messages"):
                rows = aio.run(follow_tail(cluster.bootstrap, blocks=blocks, per_block=per_block, size=size,
                                           broker_pid=pid))
        except RuntimeError as exc:  # the broker stalled
            raise typer.Exit(code=_fail(console, str(exc))) from None
        kafka = cluster.kind
    if as_json:
        typer.echo(json.dumps({"kafka": kafka, "blocks": [asdict(r) for r in rows]}, indent=1))
        return
    table = Table("messages held", "messages/s", "broker CPU ms per message",
                  title=f"{kafka} Kafka: one partition filling with single-message batches, its tail followed")
    for r in rows:
        table.add_row(str(r.stored), f"{r.messages_per_s:.0f}",
                      "n/a" if r.broker_cpu_ms_per_message is None else f"{r.broker_cpu_ms_per_message:.2f}")
    Console().print(table)


@app.command()
def floor(
    records: Annotated[int, typer.Option(min=20, help="Native records of the bench's mix, timed.")] = 2000,
    batch: Annotated[int, typer.Option(min=1, max=200, help="Records per request, as `--batch`.")] = 20,
    as_json: JsonOpt = False,
    workdir: WorkdirOpt = None,
) -> None:
    """The pipeline's own work per event with Kafka, HTTP and threads taken away: intake, share, hub and audit in
    one process over real stores (broker/bench/floor.py). No transport can make an event cheaper than this."""
    from broker.bench.floor import PARTS, floor_kit, measure_floor

    console = Console(stderr=True, quiet=as_json)
    with _bench_root(workdir) as root, floor_kit(root) as kit, console.status(f"{records} records in one process"):
        report = measure_floor(kit, records=records, batch=batch)
    if as_json:
        typer.echo(json.dumps(report, indent=1))
        return
    table = Table("part", "CPU µs per event", title=f"The floor: {report['events']} events, {batch} records per "
                  "request, one process, no Kafka or HTTP")
    for part in PARTS:
        table.add_row(part, f"{report['cpu_us_per_event'][part]:,.0f}")
    table.add_row("total", f"{report['cpu_us_per_event_total']:,.0f}")
    table.add_row("events/s per core at this cost", f"{report['events_per_s_per_core']:,}")
    table.add_row("audit records per event", str(report["audit_records_per_event"]))
    Console().print(table)


@app.command()
def client(
    rounds: Annotated[int, typer.Option(min=1, help="Timed rounds per client (after one warm-up round each).")] = 5,
    intake_messages: Annotated[int, typer.Option(min=20, help="Messages each intake round produces.")] = 2000,
    share_events: Annotated[int, typer.Option(min=1, help="Events each share round reads and delivers.")] = 1500,
    poll: Annotated[int, typer.Option(min=1, help="Events per transaction (the worker's poll).")] = 500,
    read_messages: Annotated[int, typer.Option(min=1, help="Event messages each read round takes.")] = 4000,
    audit_messages: Annotated[int, typer.Option(min=1, help="Audit messages (200 records) each read round "
                                                "takes.")] = 100,
    bootstrap: BootstrapOpt = None,
    as_json: JsonOpt = False,
    workdir: WorkdirOpt = None,
) -> None:
    """aiokafka (what the pipeline runs) against confluent-kafka (librdkafka) over the same work in the pipeline's
    patterns and sizes, on Apache Kafka (transactions needed): CPU and wall per message (broker/bench/client.py)."""
    from rich.markup import escape

    from broker.bench.client import NEEDS_CONFLUENT, ClientBenchError, Shape, Work, measure_clients

    console = Console(stderr=True, quiet=as_json)
    try:
        import confluent_kafka  # noqa: F401  (a dev dependency, pyproject.toml)
    except ImportError:
        # escaped: rich would take "[dev]" for markup and print the install command wrong
        raise typer.Exit(code=_fail(Console(stderr=True), escape(NEEDS_CONFLUENT), 2)) from None

    work = Work(intake_messages, share_events, read_messages, audit_messages)
    with _bench_root(workdir) as root, _kafka(console, root, False, bootstrap, None) as cluster:
        try:  # progress as plain lines: a spinner's refresh thread would be CPU counted against the clients
            report = measure_clients(cluster.bootstrap, rounds=rounds, work=work, shape=Shape(poll=poll),
                                     progress=lambda step: console.print(step, highlight=False),
                                     # the node's CPU counts too; on several nodes it is left out
                                     broker_pid=next(iter(cluster.pids.values())) if len(cluster.pids) == 1
                                     else None)
        except ClientBenchError as exc:
            raise typer.Exit(code=_fail(console, escape(str(exc)))) from None
        report = {"command": " ".join(["mash-broker", *sys.argv[1:]]), "kafka": cluster.kind} | report
    if as_json:
        typer.echo(json.dumps(report, indent=1))
    else:
        _print_clients(report, rounds)
    if not report["complete"]:  # a client skipped work it is measured on: its figures are void
        raise typer.Exit(code=1)


def _print_clients(report: dict[str, Any], rounds: int) -> None:
    from broker.bench.client import CLIENTS

    table = Table("scenario", "unit", "client", "CPU µs median (min-max)", "wall µs", "Kafka node CPU µs",
                  "CPU saved µs", "saved with the node's", "complete",
                  title=f"Kafka clients on {report['kafka']}: per unit, median of {rounds} rounds")
    for name, s in report["scenarios"].items():
        for c in CLIENTS:
            cpu, node = s[c]["cpu_us_per_unit"], s[c]["broker_cpu_us_per_unit"]
            saved, net = s["cpu_us_saved_per_unit"].get(c), s["cpu_us_saved_with_kafka_node"].get(c)
            table.add_row(name, s["unit"], c, f"{cpu['median']:,.1f} ({cpu['min']:,.1f}-{cpu['max']:,.1f})",
                          f"{s[c]['wall_us_per_unit']['median']:,.1f}",
                          "n/a" if node is None else f"{node['median']:,.1f}",
                          "" if saved is None else f"{saved:,.1f}", "" if net is None else f"{net:,.1f}",
                          "yes" if s[c]["complete"] else "NO")
    Console().print(table)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _nan(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else str(value)


def _fail(console: Console, message: str, code: int = 1) -> int:
    console.print(f"[red]{message}[/red]")
    return code


def _print_soak(console: Console, soak: dict[str, Any]) -> None:
    table = Table("process", "RSS MB start", "after first quarter", "peak", "end", "slope MB/h", "flat",
                  title=f"soak: {soak['duration_s']:.0f} s at {soak['rate']:g} events/s offered, "
                        f"{'no stall' if not soak['stalled'] else 'STALLED'}, "
                        f"{'kept up' if soak['kept_up'] else 'FELL BEHIND'}, "
                        f"memory {'flat' if soak['memory_flat'] else 'NOT flat'}")
    for name, m in soak["memory"].items():
        table.add_row(name, f"{m['start']}", f"{m['quarter']}", f"{m['peak']}", f"{m['end']}",
                      f"{m['slope_mb_per_hour']:+}", "yes" if m["flat"] else "NO")
    console.print(table)


def _print_targets(console: Console, targets: dict[str, dict[str, Any]]) -> None:
    table = Table("issue 24's target", "measured", "verdict", title="against the targets (broker/bench/targets.py)")
    for name, v in targets.items():
        verdict = {True: "met", False: "not met"}.get(v["met"], f"not judged: {v.get('not_judged', '')}")
        measured = v["measured"]
        if isinstance(measured, dict):
            measured = ", ".join(f"{k} {mb}" for k, mb in measured.items())
        table.add_row(f"{name}: {v['target']}", str(measured), verdict)
    console.print(table)


def _print(console: Console, r: dict[str, Any]) -> None:
    console = Console()
    p = r["pipeline"]
    table = Table("measure", "value", title=f"mash-broker bench (on {r['kafka']}, {r['workers']} worker(s), "
                                           f"offered {r['offered_rate']} events/s, {r['batch']} record(s) per request)")
    table.add_row("events / records / requests", f"{p['events']} / {p['records']} / {p['requests']}")
    table.add_row("pipeline events/s", f"{p['events_per_s']:.0f}")
    if "baseline" in r:
        table.add_row("bare Kafka messages/s", f"{r['baseline']['messages_per_s']}")
        table.add_row("ratio to one bare message per event", f"{r['ratio_to_baseline']:.3f}")
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
    if p["stalls"]:
        table.add_row("stalls (no progress for 10 s or more)",
                      "; ".join(f"{s['what']} at {s['at_s']:.0f} s for {s['seconds']:.0f} s" for s in p["stalls"]))
    console.print(table)
    _print_targets(console, r["targets"])
    if "soak" in r:
        _print_soak(console, r["soak"])
    if "stages" in r:
        s = r["stages"]
        st = Table("stage", "us per event", title=f"pure stages over {s['events']} events ({s['records']} records)")
        for stage, us in s["us_per_event"].items():
            st.add_row(stage, f"{us:.1f}")
        st.add_row("events/s with encryption", str(s["events_per_s_with_encryption"]))
        st.add_row("events/s without encryption", str(s["events_per_s_without_encryption"]))
        console.print(st)
