"""`mash-broker policy`: explain one decision, diff two protocol versions over events, run a protocol's tests, draw
its process map (`map`, broker/insight/processmap.py).

Exit codes: 0 success (for `test`: every test passed), 1 a test failed, 2 an unusable protocol or input file.
Output never carries a value from an event: paths, codes and reasons only.
"""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer

from broker.errors import InputRejected
from broker.pipeline.hub.testing import HubTestResult, run_hub_tests
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
from broker.policy.diff import Context, format_diff
from broker.policy.facts import CaseFacts
from broker.policy.hub import explain_hub
from broker.policy.prove import format_proof, format_static_diff, prove, static_diff
from broker.policy.testing import ProtocolTestResult
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


def _load(path: Path, *, prove: bool = True) -> Protocol:
    try:
        return load_protocol(path, prove=prove)
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


def run_diff(old: Protocol, new: Protocol, events: Iterable[Mapping[str, Any]],
             context: Context | None = None) -> dict[str, Any]:
    """The diff over any iterable of events (a file, or the events topic replayed), each decided under `context`
    (the registers' consent and facts for its child; none for a file of events)."""
    return diff(old, new, events) if context is None else diff(old, new, events, context)


def _facts(case_open: bool | None, s47_requested_of: list[str], adult_at_risk: bool | None,
           birth_date: str | None, school_urn: str | None = None, gp_ods: str | None = None) -> CaseFacts:
    """The register facts given on the command line (each unknown unless given)."""
    born = None
    if birth_date is not None:
        try:
            born = dt.date.fromisoformat(birth_date)
        except ValueError:
            _err("--birth-date: not an ISO date (YYYY-MM-DD)")  # the value is not echoed: it is a child's DOB
            raise typer.Exit(EXIT_UNUSABLE) from None
    return CaseFacts(case_open=case_open, s47_requested_of=frozenset(s47_requested_of), adult_at_risk=adult_at_risk,
                     birth_date=born, school_urn=school_urn, gp_ods=gp_ods)


def _explain_recorded(decision_id: str, event_file: Path | None, proto: Protocol, output: OutputFormat) -> None:
    """`explain --decision ID`: the audit record's event, subscriber and protocol version; the event from EVENT.json
    or the events topic; the registers of MASH_DATA_DIR (or MASH_STORE_URL) at the decision's time."""
    from broker.audit.store import open_audit_store
    from broker.config import Settings
    from broker.service.as_decided import (
        DecisionNotFound,
        Registers,
        explain_recorded,
        format_recorded,
        recorded_decision,
    )

    settings = Settings()
    audit = open_audit_store(settings.data_dir, settings.audit_url)
    try:
        record = recorded_decision(audit, decision_id)
    except DecisionNotFound as exc:
        _err(f"--decision: {exc}")
        raise typer.Exit(EXIT_UNUSABLE) from None
    finally:
        audit.close()
    try:
        event = _recorded_event(record["event_id"], event_file, settings)
    except (EventsFileError, ValueError) as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_UNUSABLE) from None
    registers = Registers.open(settings.data_dir, settings.store_url)
    try:
        result = explain_recorded(registers, proto, record, event)
    finally:
        registers.close()
    if output is OutputFormat.text:
        sys.stdout.write(format_recorded(result) + format_explanation(result))
    else:
        _emit(result)
    raise typer.Exit(EXIT_OK if result["as_decided"]["same"] else EXIT_FAILED)


def _recorded_event(event_id: str, event_file: Path | None, settings: Any) -> dict[str, Any]:
    """The decided event: from the file when given (it must be that event), else read back from the events topic."""
    if event_file is not None:
        events = [e for e in read_events(event_file) if e.get("event_id") == event_id]
        if not events:
            raise EventsFileError(f"{event_file}: holds no event with the decision's event id")
        return events[0]
    import asyncio
    from types import SimpleNamespace

    from broker.crypto import open_key_provider
    from broker.kafka.security import kafka_client_options
    from broker.service.as_decided import EventGone, recorded_event

    if not settings.kafka_bootstrap_servers:
        raise ValueError("--decision without EVENT.json reads the events topic: set KAFKA_BOOTSTRAP_SERVERS")
    # what recorded_event reads of a runtime: only the decided event's keys are unwrapped (each unwrap audited)
    source = SimpleNamespace(bootstrap=settings.kafka_bootstrap_servers, settings=settings,
                             kafka_security=kafka_client_options(settings), keys=open_key_provider(settings.data_dir))
    try:
        return asyncio.run(recorded_event(source, event_id))
    except EventGone as exc:
        raise ValueError(f"{exc}: give it with EVENT.json") from None


@app.command("explain")
def explain_command(
    protocol: Annotated[Path, typer.Option("--protocol", help="Protocol file (YAML): today's.")],
    event_file: Annotated[Path | None, typer.Argument(metavar="EVENT.json", help="One canonical event (JSON).")
                          ] = None,
    subscriber: Annotated[str | None, typer.Option("--subscriber", help="Subscriber name.")] = None,
    decision: Annotated[str | None, typer.Option(
        "--decision", help="Re-derive this recorded decision (its audit record gives event, subscriber, protocol "
                           "version; the event from EVENT.json or the events topic): exit 0 when today's protocol "
                           "decides the same, 1 when not.")] = None,
    output: Annotated[OutputFormat, typer.Option("--format", help="json (default) or text.")] = OutputFormat.json,
    consent_status: Annotated[str | None, typer.Option(
        help="The child's data protection consent in the register: given, refused, withdrawn, not_sought, "
             "not_applicable, unknown (it matters only to rules relying on consent). Default: the event's own "
             "consent block.")] = None,
    objection: Annotated[bool, typer.Option(help="The child's Art 21 objection is recorded.")] = False,
    case_open: Annotated[bool | None, typer.Option("--case-open/--case-closed",
                                                   help="Case register status (default unknown).")] = None,
    s47_requested_of: Annotated[list[str] | None, typer.Option(
        "--s47-requested-of", metavar="PARTNER",
        help="A partner id (protocol partners[].id) the LA called upon under CA 1989 s47(9) for this child's open "
             "enquiry; repeat for more.")] = None,
    adult_at_risk: Annotated[bool | None, typer.Option(
        "--adult-at-risk/--not-adult-at-risk",
        help="A recorded determination that the adult subject is (not) an adult at risk (default: none).")] = None,
    birth_date: Annotated[str | None, typer.Option(
        "--birth-date", metavar="YYYY-MM-DD",
        help="The identity register's date of birth (used only when the event carries none).")] = None,
    school_urn: Annotated[str | None, typer.Option(
        "--school-urn", metavar="URN",
        help="The school the identity register learned the child is registered with (registered_with).")] = None,
    gp_ods: Annotated[str | None, typer.Option(
        "--gp-ods", metavar="ODS",
        help="The GP practice the identity register learned the child is registered with (registered_with).")] = None,
    hub: Annotated[bool, typer.Option("--hub", help="What the protocol's hub section watches for: cumulative "
                                      "concern rules, enquiry window, repeat referrals, clocks.")] = False,
) -> None:
    """Why SUBSCRIBER does or does not receive the event: rule by rule, field by field. With --decision ID: the
    recorded decision re-derived under today's protocol and the registers (MASH_DATA_DIR) as they were."""
    proto = _load(protocol, prove=False)  # explain shows a refused protocol's counterexample too
    if hub:
        _emit(explain_hub(proto.hub))
        return
    if decision is not None:
        _explain_recorded(decision, event_file, proto, output)
        return
    if event_file is None or subscriber is None:
        _err("give EVENT.json and --subscriber, or --decision ID")
        raise typer.Exit(EXIT_UNUSABLE)
    facts = _facts(case_open, s47_requested_of or [], adult_at_risk, birth_date, school_urn, gp_ods)
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
    result = explain(proto, events[0], subscriber, consent, facts=facts)
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
                                         "keys in MASH_DATA_DIR) instead of a file, each event decided under "
                                         "the consent, case and determinations registers of MASH_DATA_DIR "
                                         "(or MASH_STORE_URL).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="The diff as JSON (for machines) instead of a table."
                                          )] = False,
    static: Annotated[bool, typer.Option("--static", help="No events: every decision context either version can "
                                         "meet (broker/policy/prove.py), each outcome that can change per "
                                         "subscriber, event type and field, when, with a counterexample each."
                                         )] = False,
) -> None:
    """Per subscriber: events and fields that the new version starts or stops sharing. Exit 0 when no decision
    changes, 1 when any does, 2 on an unusable protocol or input."""
    if static:
        if events is not None or replay:
            _err("--static takes no events: give it without --events or --replay")
            raise typer.Exit(EXIT_UNUSABLE)
        found = static_diff(_load(old, prove=False), _load(new, prove=False))
        if as_json:
            _emit(found)
        else:
            sys.stdout.write(format_static_diff(found))
        raise typer.Exit(EXIT_FAILED if found["changed"] else EXIT_OK)
    if (events is None) == (not replay):
        _err("give exactly one of --events FILE, --replay or --static")
        raise typer.Exit(EXIT_UNUSABLE)
    before, after = _load(old), _load(new)
    source: Iterable[dict[str, Any]]
    try:
        if replay:
            import asyncio

            from broker.config import Settings
            from broker.service.as_decided import Registers, diff_context
            from broker.service.replay import replay_events

            settings = Settings()
            source = asyncio.run(replay_events(settings))
            registers = Registers.open(settings.data_dir, settings.store_url)
            try:
                result = run_diff(before, after, source, diff_context(registers))
            finally:
                registers.close()
        else:
            assert events is not None
            result = run_diff(before, after, read_events(events))
    except (EventsFileError, ValueError) as exc:
        _err(str(exc))
        raise typer.Exit(EXIT_UNUSABLE) from None
    if as_json:
        _emit(result)
    else:
        sys.stdout.write(format_diff(result))
    raise typer.Exit(EXIT_FAILED if result["changed"] else EXIT_OK)


@app.command("map")
def map_command(
    file: Annotated[Path, typer.Argument(metavar="PROTOCOL", help="Protocol file (YAML).")],
    out: Annotated[Path | None, typer.Option("--out", help="Write the map as SVG (Graphviz's dot) to this file."
                                             )] = None,
    against: Annotated[Path | None, typer.Option("--against", help="An earlier protocol (YAML): draw and list "
                                                 "the edges added, removed and changed since it.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The map (or the diff) as JSON instead of text."
                                          )] = False,
) -> None:
    """The process map: agencies -> event types -> subscribers, each route with its rule, lawful basis and the
    classifications released, masked and withheld (broker/insight/processmap.py). Reads the protocol only, never
    an event. Exit 0; with --against, 1 when the map changed; 2 on an unusable protocol or no Graphviz."""
    from broker.insight import processmap as pm

    current = pm.process_map(_load(file, prove=False))
    diff = pm.map_diff(pm.process_map(_load(against, prove=False)), current) if against else None
    if as_json:
        _emit(pm.diff_as_dict(diff) if diff else {"protocol": current.protocol,
                                                  "edges": [e.as_dict() for e in current.edges],
                                                  "unshared": list(current.unshared)})
    else:
        sys.stdout.write(pm.format_diff(diff) if diff else pm.format_text(current))
    if out is not None:
        try:
            out.write_bytes(pm.render_svg(pm.to_dot(current, diff)))
        except pm.RenderError as exc:
            _err(f"{out}: {exc}")
            raise typer.Exit(EXIT_UNUSABLE) from None
        except OSError as exc:
            _err(f"{out}: cannot write ({exc.strerror})")
            raise typer.Exit(EXIT_UNUSABLE) from None
    raise typer.Exit(EXIT_FAILED if diff is not None and not diff.empty else EXIT_OK)


@app.command("test")
def test_command(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Protocol file (YAML) with embedded tests.")],
) -> None:
    """Run the protocol's embedded tests: exit 0 when all pass, 1 when any fails (or there are none), 2 when the
    file is unusable."""
    proto = _load(file, prove=False)  # broken invariants are reported below, with their counterexamples
    results: list[ProtocolTestResult | HubTestResult] = [*run_protocol_tests(proto),
                                                         *run_hub_tests(proto.hub, proto.risk_scales)]
    if not results:
        _err(f"{file}: no tests: a protocol must carry tests for every subscriber")
        raise typer.Exit(EXIT_FAILED)
    for result in results:
        hub = "hub: " if isinstance(result, HubTestResult) else ""  # the hub section's cases (broker/policy/hub.py)
        typer.echo(f"{'PASS' if result.passed else 'FAIL'}  {hub}{result.name}")
        for failure in result.failures:
            typer.echo(f"      {failure}")
    failed = sum(not r.passed for r in results)
    typer.echo(f"{len(results) - failed} passed, {failed} failed ({proto.revision})")
    proof = prove(proto)  # the invariants, over every decision the protocol can make (broker/policy/prove.py)
    if proof.invariants:
        for line in format_proof(proof, str(file)):
            typer.echo(line)
    raise typer.Exit(EXIT_FAILED if failed or not proof.proven else EXIT_OK)
