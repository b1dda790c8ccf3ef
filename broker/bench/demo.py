"""The bench's fictitious mix, dated contacts and the hub's decisions, loaded into a running broker (`mash-broker
insight demo-load`), so the performance framework (issue 17) has records, decisions, clocks and deliveries to count.

Against a broker started with `mash-broker run --dev` (its data directory holds the development credentials and the
hub's development subscriber key):

1. posts `records` bodies of the bench mix (every agency format), and police contacts dated over the last `weeks`
   weeks, one per postcode district per week, plus, with `rise`, a synthetic rise in one district in the last two
   weeks (what the hotspot detector must flag);
2. waits until the protocol has decided every accepted event for the hub (the audit store says so), then reads the
   hub's deliveries as the hub would (opened with its key);
3. posts a hub decision (POST /v1/hub/decisions) for each child the hub was told about, outcomes in turn, naming the
   partner of the agency that sent the first contact as the referrer; every third child gets a second decision a
   step up (early help to a section 17 assessment) or down.

Fictitious data only (broker/bench/records.py); never point it at a live broker.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import orjson

from adapters.kit.registry import AGENCIES
from broker.bench.records import BY_NAME, DISTRICTS, mix, usable_formats
from broker.errors import InputRejected

HUB = "mash_hub"
OUTCOMES = ("early_help", "no_further_action", "section_17_assessment", "information_and_advice",
            "strategy_discussion_section_47", "early_help", "police_action")
CONTACT_BASE = 1_000_000  # record numbers of the dated contacts: clear of the mix's, in the place of n % CHILDREN
WAIT_SECONDS = 300.0  # give up (an error, never a partial demo presented as whole) after this long


class DemoError(InputRejected):
    """The demo cannot load: no running broker, no development credentials, or the broker did not keep up."""


def _police_contact(n: int, occurred: dt.datetime) -> bytes:
    """The bench's police incident n, dated `occurred` (a new reference, so a new event)."""
    fmt = BY_NAME["police.pole"]
    record = fmt.part(n)
    record["reference"] = f"DEMO-{n}"
    end = occurred + dt.timedelta(minutes=40)
    record["occurred"] = {"start": occurred.strftime("%Y-%m-%dT%H:%M:%SZ"), "end": end.strftime("%Y-%m-%dT%H:%M:%SZ")}
    return fmt.wrap([record], n)


def dated_contacts(today: dt.date, weeks: int, rise: str | None) -> list[bytes]:
    """One police contact per district per week for `weeks` weeks before `today`; with `rise` (e.g. 'ZZ7'), six more
    a week in that district over the last two weeks."""
    if rise is not None and (not rise.startswith("ZZ") or not rise[2:].isdigit()
                             or not 1 <= int(rise[2:]) <= DISTRICTS):
        raise DemoError(f"rise: not one of the demo's districts ZZ1..ZZ{DISTRICTS}")
    bodies = []
    for week in range(weeks, 0, -1):
        monday = today - dt.timedelta(days=today.weekday() + 7 * week)
        for district in range(DISTRICTS):
            extra = 6 if rise is not None and district == int(rise[2:]) - 1 and week <= 2 else 0
            for k in range(1 + extra):
                child = district + DISTRICTS * ((week + k) % 16)  # a child living in that district (c % 12)
                n = CONTACT_BASE + child + 200 * (week * 10 + k)
                when = dt.datetime.combine(monday + dt.timedelta(days=k % 5), dt.time(20, 15))
                bodies.append(_police_contact(n, when))
    return bodies


def _credentials(data_dir: Path) -> dict[str, str]:
    path = data_dir / "dev-credentials.json"
    if not path.is_file():
        raise DemoError(f"no dev-credentials.json in {data_dir.name or data_dir}: start the broker with "
                        "`mash-broker run --dev` on this data directory")
    return dict(json.loads(path.read_text()))


async def _post(http: httpx.AsyncClient, base: str, token: str, agency: str, content_type: str, body: bytes,
                system: str | None = None) -> list[str]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": content_type}
    if system:
        headers["X-Source-System"] = system
    r = await http.post(f"{base}/v1/records/{agency}", content=body, headers=headers)
    if r.status_code != 202:
        return []
    return [e["event_id"] for e in r.json()["events"]]


def _hub_decided(data_dir: Path, event_ids: set[str]) -> tuple[int, int]:
    """(how many of the events the audit store shows decided for the hub, how many were delivered to it)."""
    from broker.audit.store import open_audit_store

    store = open_audit_store(data_dir)
    try:
        found = {e["record"]["event_id"] for e in store.search(kind="decision", subscriber=HUB, limit=10000)
                 if "record" in e}
        delivered = len(store.search(kind="delivered", subscriber=HUB, limit=10000))
    finally:
        store.close()
    return len(found & event_ids), delivered


async def _wait_decided(data_dir: Path, event_ids: set[str]) -> int:
    """Until every accepted event has the hub's decision (a condition on the audit store): then how many were
    delivered to the hub."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        decided, delivered = await asyncio.to_thread(_hub_decided, data_dir, event_ids)
        if decided == len(event_ids):
            return delivered
        await asyncio.sleep(0.5)
    raise DemoError("the broker did not decide every event for the hub in time: is a share worker running?")


async def _hub_deliveries(http: httpx.AsyncClient, base: str, creds: dict[str, str], data_dir: Path,
                          want: int) -> list[dict[str, Any]]:
    """The hub's deliveries, opened with its development key, once `want` of them can be read."""
    from broker.crypto.client import SubscriberClient

    key = data_dir / "subscriber-keys" / f"{HUB}.key"
    if not key.is_file():
        raise DemoError("no development key for the hub: start the broker with `mash-broker run --dev`")
    client = SubscriberClient.from_file(key, HUB)
    headers = {"Authorization": f"Bearer {creds[f'subscriber:{HUB}']}"}
    deadline = time.monotonic() + WAIT_SECONDS
    opened: dict[str, dict[str, Any]] = {}
    after: str | None = None
    while time.monotonic() < deadline:
        params: dict[str, Any] = {"limit": 1000, **({"after": after} if after else {})}
        r = await http.get(f"{base}/v1/subscribers/{HUB}/events", params=params, headers=headers)
        r.raise_for_status()
        page = r.json()
        for d in page["deliveries"]:
            event = client.open(base64.b64decode(d["sealed"]))
            opened[event["event_id"]] = event
        after = page["next_cursor"]
        if len(opened) >= want:
            return list(opened.values())
        if not page["deliveries"]:
            await asyncio.sleep(0.5)
    raise DemoError("the hub's deliveries could not all be read in time")


def _partner_of_agency(protocol_file: Path) -> dict[str, str]:
    """Agency -> the protocol's partner for it that has a subscriber (so it can be told the outcome), else any."""
    from broker.policy.compile import load_protocol

    protocol = load_protocol(protocol_file, prove=False)
    subscribed = {s.partner for s in protocol.subscribers.values()}
    out: dict[str, str] = {}
    for pid, partner in sorted(protocol.partners.items(), key=lambda kv: kv[0] not in subscribed):
        if partner.agency:
            out.setdefault(partner.agency, pid)
    return out


def decisions_for(deliveries: list[dict[str, Any]], partners: dict[str, str], decided_at: str) -> list[dict[str, Any]]:
    """The hub's decisions on what it was told: one per child (its contacts and referrals as the concerns), outcomes
    in turn; every third child a second decision that steps up or down."""
    by_child: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in deliveries:
        if event["event_type"].split(".")[0] in AGENCIES:  # an agency's contact or referral, not a hub event
            by_child[event["subject"]["linkage"]["token"]].append(event)
    lead = partners.get("social_care")
    out = []
    for i, (token, events) in enumerate(sorted(by_child.items())):
        events.sort(key=lambda e: e["occurred_at"])
        referrer = partners.get(events[0]["source"]["agency"])
        outcome = OUTCOMES[i % len(OUTCOMES)]
        base = {"subject_token": token, "concerns": [e["event_id"] for e in events[:50]], "rag": "amber",
                "lead": {"partner": lead, "professional_role": "social_worker"},
                "contributing_partners": sorted({p for e in events if (p := partners.get(e["source"]["agency"]))}),
                "referring_partners": [referrer] if referrer else [], "decided_at": decided_at}
        out.append({**base, "reference": f"DEMO-{i}-1", "outcome": outcome})
        if i % 3 == 0:
            later = {"early_help": "section_17_assessment", "section_17_assessment": "early_help",
                     "strategy_discussion_section_47": "early_help"}.get(outcome)
            if later:
                out.append({**base, "reference": f"DEMO-{i}-2", "outcome": later})
    return out


async def load_demo(base: str, data_dir: Path, *, records: int = 300, weeks: int = 26, rise: str | None = None,
                    protocol_file: Path | None = None, today: dt.date | None = None) -> dict[str, Any]:
    """Load the demo into the broker at `base`; a summary of what was sent and recorded."""
    import os

    creds = _credentials(data_dir)
    protocol = protocol_file or Path(os.environ.get("MASH_PROTOCOL_FILE", "deploy/protocols/sample-partnership.yaml"))
    partners = _partner_of_agency(protocol)
    formats, _, _ = usable_formats()
    accepted: set[str] = set()
    async with httpx.AsyncClient(timeout=60) as http:
        try:
            for fmt, numbers in mix(formats, records):
                accepted |= set(await _post(http, base, creds[f"intake:{fmt.agency}"], fmt.agency,
                                            fmt.content_type, fmt.make(*numbers), fmt.system))
            police = BY_NAME["police.pole"]
            for body in dated_contacts(today or dt.datetime.now(dt.UTC).date(), weeks, rise):
                accepted |= set(await _post(http, base, creds["intake:police"], "police", police.content_type, body))
        except httpx.TransportError:
            raise DemoError(f"no broker answering at {base}") from None
        if not accepted:
            raise DemoError("the broker accepted none of the demo's records")
        delivered = await _wait_decided(data_dir, accepted)
        deliveries = await _hub_deliveries(http, base, creds, data_dir, delivered)
        decided_at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        hub_headers = {"Authorization": f"Bearer {creds[f'hub_decision:{HUB}']}", "Content-Type": "application/json"}
        recorded, refused = 0, 0
        for decision in decisions_for(deliveries, partners, decided_at):
            r = await http.post(f"{base}/v1/hub/decisions", content=orjson.dumps(decision), headers=hub_headers)
            recorded, refused = (recorded + 1, refused) if r.status_code in (200, 201, 202) else (recorded, refused + 1)
    return {"events_accepted": len(accepted), "hub_deliveries": len(deliveries), "hub_decisions": recorded,
            "hub_decisions_refused": refused}
