"""`mash-broker policy`: explain one decision, diff two protocol versions over events, run a protocol's tests.

Exit codes: 0 success (for `test`: every test passed), 1 a test failed, 2 an unusable protocol or input file.
Output never carries a value from an event: paths, codes and reasons only.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from broker.errors import InputRejected
from broker.policy import (
    ConsentState,
    Protocol,
    ProtocolError,
    diff,
    explain,
    format_explanation,
    load_protocol,
    run_protocol_tests,
)
from broker.schema.event_files import NOT_JSON, read_documents

EXIT_OK, EXIT_FAILED, EXIT_UNUSABLE = 0, 1, 2

app = typer.Typer(help="Information sharing protocol: explain decisions, diff versions, run embedded tests.",
                  no_args_is_help=True)


class OutputFormat(StrEnum):
    json = "json"
    text = "text"


class EventsFileError(InputRejected):
    """An events file that cannot be read: names the file and line, never the content."""


def _err(text: str) -> None:
    print(text, file=sys.stderr)


def _emit(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode() + "\n")


def _load(path: Path) -> Protocol:
    try:
        return load_protocol(path)
    except ProtocolError as exc:
        for problem in exc.problems:
            _err(str(problem))
        raise typer.Exit(EXIT_UNUSABLE) from None


def read_events(path: Path) -> Iterator[dict[str, Any]]:
    """Events from a JSON Lines file, a JSON array or a single JSON object (by content, not by file name)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise EventsFileError(f"{path}: cannot read ({exc.strerror})") from None
    for position, item in read_documents(data):
        where = f"{path}: {position}" if position else str(path)
        if item is NOT_JSON:
            raise EventsFileError(f"{where}: not valid JSON")
        if not isinstance(item, dict):
            raise EventsFileError(f"{where}: not a JSON object")
        yield item


def run_diff(old: Protocol, new: Protocol, events: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The diff over any iterable of events: a file today, a Kafka replay tomorrow."""
    return diff(old, new, events)


@app.command("explain")
def explain_command(
    event_file: Annotated[Path, typer.Argument(metavar="EVENT.json", help="One canonical event (JSON).")],
    protocol: Annotated[Path, typer.Option("--protocol", help="Protocol file (YAML).")],
    subscriber: Annotated[str, typer.Option("--subscriber", help="Subscriber name.")],
    output: Annotated[OutputFormat, typer.Option("--format", help="json (default) or text.")] = OutputFormat.json,
    consent_status: Annotated[str | None, typer.Option(
        help="The child's data protection consent in the register: given, refused, withdrawn, not_sought, "
             "not_applicable, unknown (it matters only to rules relying on consent). Default: the event's own "
             "consent block.")] = None,
    objection: Annotated[bool, typer.Option(help="The child's Art 21 objection is recorded.")] = False,
    case_open: Annotated[bool | None, typer.Option("--case-open/--case-closed",
                                                   help="Case register status (default unknown).")] = None,
) -> None:
    """Why SUBSCRIBER does or does not receive the event: rule by rule, field by field."""
    proto = _load(protocol)
    try:
        events = list(read_events(event_file))
    except EventsFileError as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_UNUSABLE) from None
    if len(events) != 1:
        _err(f"{event_file}: holds {len(events)} events; explain takes exactly one")
        raise typer.Exit(EXIT_UNUSABLE)
    consent = None
    if consent_status is not None or objection:
        try:
            consent = ConsentState(consent_status or "unknown", objection)
        except ValueError as exc:
            _err(f"--consent-status: {exc}")
            raise typer.Exit(EXIT_UNUSABLE) from None
    result = explain(proto, events[0], subscriber, consent, case_open=case_open)
    if output is OutputFormat.text:
        sys.stdout.write(format_explanation(result))
    else:
        _emit(result)


@app.command("diff")
def diff_command(
    old: Annotated[Path, typer.Option("--from", help="The protocol in force (YAML).")],
    new: Annotated[Path, typer.Option("--to", help="The proposed protocol (YAML).")],
    events: Annotated[Path | None, typer.Option("--events", help="Events: JSON Lines, a JSON array or one object."
                                                 )] = None,
    replay: Annotated[bool, typer.Option("--replay", help="Replay the events topic (KAFKA_BOOTSTRAP_SERVERS, "
                                         "keys in MASH_DATA_DIR) instead of a file.")] = False,
) -> None:
    """Per subscriber: events and fields that the new version starts or stops sharing."""
    if (events is None) == (not replay):
        _err("give exactly one of --events FILE or --replay")
        raise typer.Exit(EXIT_UNUSABLE)
    before, after = _load(old), _load(new)
    source: Iterable[dict[str, Any]]
    try:
        if replay:
            import asyncio

            from broker.config import Settings
            from broker.service.replay import replay_events

            source = asyncio.run(replay_events(Settings()))
        else:
            assert events is not None
            source = read_events(events)
        result = run_diff(before, after, source)
    except (EventsFileError, ValueError) as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_UNUSABLE) from None
    _emit(result)


@app.command("test")
def test_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Protocol file (YAML) with embedded tests.")],
) -> None:
    """Run the protocol's embedded tests: exit 0 when all pass, 1 when any fails (or there are none), 2 when the
    file is unusable."""
    proto = _load(file)
    results = run_protocol_tests(proto)
    if not results:
        _err(f"{file}: no tests: a protocol must carry tests for every subscriber")
        raise typer.Exit(EXIT_FAILED)
    for result in results:
        typer.echo(f"{'PASS' if result.passed else 'FAIL'}  {result.name}")
        for failure in result.failures:
            typer.echo(f"      {failure}")
    failed = sum(not r.passed for r in results)
    typer.echo(f"{len(results) - failed} passed, {failed} failed ({proto.revision})")
    raise typer.Exit(EXIT_FAILED if failed else EXIT_OK)
