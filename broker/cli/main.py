"""`mash-broker`: run the service, convert and validate files, list adapters, and the keys/policy/audit tools."""

from __future__ import annotations

import importlib
import json
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="mash-broker: multi-agency safeguarding interoperability broker.", no_args_is_help=True,
                  pretty_exceptions_enable=False)

# Sub-apps live beside this file, one per concern.
SUB_APPS = ("keys", "policy", "audit", "apikeys", "doctor", "config", "backup", "bench", "stores", "kafka",
            "decisions", "consent", "hub", "insight")
FILE_COMMANDS = ("convert", "validate")


def _named_command(argv: list[str]) -> str | None:
    """The command a program's command line names (`mash-broker kafka run ...`, `python -m broker.cli.main ...`,
    `python -c "from broker.cli.main import app; app()" worker`), else None: imported as a library (tests, the
    bench), or asked for help or a completion, every command is registered. Each sub-app's imports cost up to a
    second of start-up, paid by every short-lived command and every process spawned for a service or a worker."""
    program = os.path.basename(argv[0]) if argv else ""
    if program not in ("mash-broker", "main.py", "-c") or len(argv) < 2:
        return None
    return argv[1] if argv[1] in (*SUB_APPS, *FILE_COMMANDS, "adapters", "run", "worker") else None


_named = _named_command(sys.argv)
if _named is None or _named in FILE_COMMANDS:
    from broker.cli import files

    app.command()(files.convert)
    app.command()(files.validate)

for _name in SUB_APPS if _named is None else (n for n in SUB_APPS if n == _named):
    try:
        app.add_typer(importlib.import_module(f"broker.cli.{_name}").app, name=_name)
    except ModuleNotFoundError as _exc:  # only while a sub-app is not part of this build
        if _exc.name != f"broker.cli.{_name}":
            raise


@app.command()
def adapters(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object: adapters and entry points not loaded.")]
    = False,
) -> None:
    """List the installed adapters with the formats and content types they accept; exit 1 when a plug-in's entry
    point did not load."""
    from adapters.kit.registry import all_adapters, expectation, load_errors

    found, broken = all_adapters(), load_errors()
    if as_json:
        typer.echo(json.dumps({"adapters": [{"name": a.name, "agency": a.agency, "formats": list(a.formats),
                                             "content_types": list(a.content_types),
                                             "extensions": list(a.extensions), "expects": expectation(a)}
                                            for a in found], "not_loaded": list(broken)}, indent=2))
        raise typer.Exit(1 if broken else 0)
    table = Table("adapter", "agency", "formats", "content types", "file endings")
    for a in found:
        table.add_row(a.name, a.agency, ", ".join(a.formats), ", ".join(a.content_types), ", ".join(a.extensions))
    # Without a terminal (a pipe, a file, CI) Rich assumes 80 columns and cuts names: print the table at full width.
    console = Console() if sys.stdout.isatty() else Console(width=400)
    console.print(table)
    for error in broken:
        console.print(f"[red]not loaded:[/red] {error}")
    raise typer.Exit(1 if broken else 0)


@app.command()
def run(
    host: Annotated[str | None, typer.Option(help="Bind address (MASH_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (MASH_PORT).")] = None,
    dev: Annotated[bool, typer.Option(help="Generate missing development keys and API keys (MASH_DEV_MODE).")] = False,
    share_workers: Annotated[int, typer.Option(min=0, help="Share workers in this process.")] = 1,
    audit_indexer: Annotated[bool, typer.Option(help="Also run an audit indexer here (one of all that run "
                                                "indexes at a time).")] = True,
) -> None:
    """Start the service: the API and the share workers, on KAFKA_BOOTSTRAP_SERVERS or, without it, a local Kafka:
    Apache Kafka under <data_dir>/kafka (durable) where Java 17+ is installed, else the embedded Tansu (memory only);
    MASH_LOCAL_KAFKA=apache or tansu insists on one."""
    import uvicorn
    from aiokafka.errors import KafkaError

    from adapters.kit.registry import load_errors
    from broker import aio
    from broker.api.app import create_app
    from broker.api.limits import bounded_http_protocol
    from broker.config import Settings
    from broker.kafka.apache import KafkaUnavailable
    from broker.kafka.embedded import NOTICE as EMBEDDED_NOTICE
    from broker.kafka.embedded import EmbeddedBrokerError
    from broker.logging import configure
    from broker.service.root import STARTUP_ERRORS, StartupFailed, load_local, open_kafka, open_runtime

    if dev:
        os.environ["MASH_DEV_MODE"] = "1"
    settings = Settings()
    overrides = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    settings = settings.model_copy(update=overrides)
    configure(settings.log_level, settings.log_format)
    try:
        local = load_local(settings)
    except STARTUP_ERRORS as exc:
        typer.echo(f"mash-broker cannot start: {exc}", err=True)
        raise typer.Exit(2) from None
    base = f"http://{settings.host}:{settings.port}"

    async def serve() -> None:
        # Kafka is reached before the server starts, so that an unreachable cluster or an embedded broker that will
        # not start is one plain line, not a server's lifespan traceback.
        kafka = None
        try:
            kafka = await open_kafka(settings)
            runtime = await open_runtime(local, kafka)
        except (*STARTUP_ERRORS, KafkaError, EmbeddedBrokerError, KafkaUnavailable) as exc:
            if kafka is not None:
                await kafka.close()
            where = settings.kafka_bootstrap_servers or ("the local Apache Kafka" if kafka and kafka.local_kafka
                                                         else "the embedded broker")
            detail = str(exc) if type(exc).__name__ in str(exc) else f"{type(exc).__name__}: {exc}"
            raise StartupFailed(f"Kafka ({where}) unavailable: {detail}") from None
        typer.echo(f"mash-broker {base}  API docs: {base}/docs  IG page: {base}/ig  health: {base}/readyz  "
                   f"Kafka: {runtime.kafka_in_use}", err=True)
        # The address a hub's own consumer needs (docs/subscribers.md): on the local Kafka a port chosen at start.
        typer.echo(f"Kafka bootstrap: {runtime.bootstrap}  (delivery topics {settings.topics.deliver('<name>')}, "
                   f"consumer group {settings.topic_prefix}.subscriber.<name>)", err=True)
        for error in load_errors():  # a plug-in installed but not loaded: said at start, by doctor and by /readyz
            typer.echo(f"adapter not loaded: {error}: reinstall it into this environment and restart", err=True)
        if runtime.embedded is not None:
            typer.echo(EMBEDDED_NOTICE, err=True)
            if runtime.local_kafka_note:  # why not Apache Kafka: Java or the jars missing (MASH_LOCAL_KAFKA=auto)
                typer.echo(f"Apache Kafka not used: {runtime.local_kafka_note}", err=True)
        application = create_app(settings, share_workers=share_workers, audit_indexer=audit_indexer, runtime=runtime)
        config = uvicorn.Config(application, host=settings.host, port=settings.port, log_level="warning",
                                access_log=False, http=bounded_http_protocol())  # request heads bounded
        await uvicorn.Server(config).serve()

    try:
        aio.run(serve())
    except StartupFailed as exc:
        typer.echo(f"mash-broker cannot start: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def worker(
    share_workers: Annotated[int, typer.Option(min=0, help="Share workers (consumer-group members) here; 0 with "
                                               "--audit-indexer: an audit indexer process of its own.")] = 1,
    audit_indexer: Annotated[bool, typer.Option(help="Also run an audit indexer here.")] = True,
) -> None:
    """Run share workers only (no HTTP): scale out by starting more of these; they share the consumer group."""
    if share_workers == 0 and not audit_indexer:
        raise typer.BadParameter("nothing to run: give --share-workers 1 or more, or keep --audit-indexer")
    import asyncio
    import signal

    from broker.aio import run
    from broker.config import Settings
    from broker.logging import configure
    from broker.service.root import load_local, open_broker

    settings = Settings()
    configure(settings.log_level, settings.log_format)

    async def main() -> None:
        rt = await open_broker(load_local(settings))
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, rt.stop_event.set)
        rt.start_workers(share_workers, audit_indexer)
        try:
            await rt.stop_event.wait()
        finally:
            await rt.stop()

    run(main())


if __name__ == "__main__":
    app()
