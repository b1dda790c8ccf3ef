"""Synthetic, clearly fictitious native records for every agency format, numbered so each makes new event ids.

Every child is "Testchild Example<n>" with a 999-range NHS number (valid Modulus 11) or a UPN with a valid check
letter from the fictitious LA 380 / establishment 9999; addresses are in fictitious postcode districts ZZ1 to ZZ12
(the ZZ area does not exist), pupils at fictitious schools with URNs 999001 upwards, patients at fictitious GP
practices Y99901 upwards, each child always in the same district, school and practice, so the performance
framework's breakdowns (issue 17) have places to break down by. A pool of children spreads the linkage tokens (the
Kafka keys) over the events topic's partitions as real traffic would.

The pool turns over, as a partnership's children do: each spell of SPELL records is about CHILDREN children (about 40
records each, several agencies' on the same dates, enough for the hub's cumulative-concern rules to fire), and the
next spell about CHILDREN others, in the same places (SPELL_STRIDE). Without it a one-hour soak gave each of 200
children thousands of concerns within one 90-day window, which no child has; what a crowded child costs the hub
watch is measured on its own (tests/hub/test_crowded_child.py). Runs of up to SPELL records (the bench's default
sizes) are unchanged.

`usable_formats()` keeps only the formats whose adapter is registered and turns the template into schema-valid
events, so the benchmark runs with whatever adapters this build has.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import orjson
from stdnum.gb import nhs, upn

from adapters.kit.interface import AdaptContext
from adapters.kit.registry import all_adapters

CHILDREN = 200  # distinct fictitious children in the mix at a time
SPELL = 8_000  # records about one pool of children before the next pool (see the module docstring)
# How far apart two spells' children are numbered: past the pool, and a multiple of every cycle a child's places
# follow (districts 12, sectors 10, schools 8, practices 6: lcm 120), so the n-th child of every spell lives in the
# same district, sector, school and practice, and a record number says where, as it did before the pool turned over
# (broker/bench/demo.py places its contacts by it).
SPELL_STRIDE = 600
DISTRICTS = 12  # fictitious postcode districts ZZ1..ZZ12
SCHOOLS = 8  # fictitious school URNs 999001..999008 (999001: the sample protocol's subscribing school)
PRACTICES = 6  # fictitious GP practice ODS codes Y99901..Y99906 (Y99901: the sample's subscribing practice)
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"


def postcode(c: int, unit: str = "ZZ") -> str:
    """Child c's fictitious postcode: district ZZ1..ZZ12, sector 0-9, unit letters `unit`."""
    return f"ZZ{1 + c % DISTRICTS} {c % 10}{unit}"


def school_urn(c: int) -> str:
    return str(999001 + c % SCHOOLS)


def gp_ods(c: int) -> str:
    return f"Y999{1 + c % PRACTICES:02d}"


def nhs_number(n: int) -> str:
    """A distinct valid test NHS number in the 999 range per n < 450,000 (Modulus 11 check digit). Child n takes base
    2n, or 2n + 1 where 2n's check would be 10 (no number): 2n + 1's check then differs, and no other child's base is
    odd. (Taking the next base up, as this once did, gave 18 of the first 200 children a neighbour's number.)"""
    k = 2 * (n % 450_000)
    for base in (f"999{k:06d}", f"999{k + 1:06d}"):
        check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(base)) % 11
        if check != 10:
            number = base + str(0 if check == 11 else check)
            assert nhs.is_valid(number)
            return number
    raise AssertionError("unreachable: consecutive bases never both have check 10")


def pupil_number(n: int) -> str:
    """A UPN with a valid check letter: LA 380, establishment 9999, fictitious."""
    body = f"3809999{(n % 100_000):05d}"[:12]
    return upn.calc_check_digit(body) + body


@dataclass(frozen=True, slots=True)
class Format:
    """One native format: which agency endpoint and content type, and how to make a body of its n-th records.

    A body holds one record or several (a Bundle, an HL7 v2 batch, a POLE `records` array, a CTF/CME/CIN file with
    several pupils or children, a 903 file with several rows), as agency systems send them.
    """

    name: str  # adapter name
    agency: str
    content_type: str
    weight: int  # relative share of the mix
    part: Callable[[int], Any]  # the n-th record, as a fragment of the body
    wrap: Callable[[list[Any], int], bytes]  # (fragments, first record number) -> the body
    system: str | None = None  # X-Source-System, where the format needs it

    def make(self, *numbers: int) -> bytes:
        """A body holding the records with these numbers (one or more)."""
        return self.wrap([self.part(n) for n in numbers], numbers[0])


def _child(n: int) -> int:
    return n % CHILDREN + SPELL_STRIDE * (n // SPELL)


def _day(n: int, offset: int = 0, fmt: str = "%Y-%m-%d") -> str:
    """A distinct past date per record number, so each record is a new event (event ids come from record ids)."""
    return (date(2000, 1, 1) + timedelta(days=n % 8000 + offset)).strftime(fmt)


def _stamp(n: int) -> str:
    return (datetime(2024, 1, 1) + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S")


def _fhir_patient(n: int) -> dict[str, Any]:
    c = _child(n)
    return {
        "resourceType": "Patient", "id": f"bench-{n}", "meta": {"versionId": "1"},
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number(c)}],
        "name": [{"use": "official", "family": f"Example{c}", "given": ["Testchild"]}],
        "gender": "female", "birthDate": f"20{10 + c % 8:02d}-0{1 + c % 9}-1{c % 10}",
        "address": [{"line": [f"{c} Fictional Road"], "city": "Testtown", "postalCode": postcode(c)}],
        "telecom": [{"system": "phone", "value": "01100 000000"}],
        "generalPractitioner": [{"identifier": {"system": ODS, "value": gp_ods(c)},
                                 "display": "Example Surgery (fictitious)"}]}


def _fhir_body(patients: list[dict[str, Any]], _first: int) -> bytes:
    if len(patients) == 1:
        return orjson.dumps(patients[0])
    return orjson.dumps({"resourceType": "Bundle", "type": "collection",
                         "entry": [{"fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, p['id'])}", "resource": p}
                                   for p in patients]})


def _hl7_adt(n: int) -> str:
    c = _child(n)
    segments = [
        f"MSH|^~\\&|PAS|RXX01^1.2.3^ISO|MASH|MASH|20240301101500||ADT^A01^ADT_A01|BENCH{n:08d}|P|2.4",
        "EVN|A01|20240301101500",
        f"PID|1||{nhs_number(c)}^^^NHS^NH~B{n:07d}^^^RXX^MR||Example{c}^Testchild^^^^^L||20150102|F|||"
        f"1 Test Street^^Testtown^^{postcode(c)}^GBR^H||01100 000000",
        f"NK1|1|Example^Testparent|MTH^Mother^HL70063|1 Test Street^^Testtown^^{postcode(c)}|01100 000001",
    ]
    pv1 = [""] * 46
    pv1[0], pv1[1], pv1[2], pv1[3] = "PV1", "1", "E", "ED^BAY1^BED1^RXX01"
    pv1[19], pv1[44] = f"V{n:07d}", "20240301100000"
    segments.append("|".join(pv1))
    return "\r".join(segments) + "\r"


def _hl7_body(messages: list[str], _first: int) -> bytes:
    return "".join(messages).encode()  # an HL7 v2 stream: messages one after another, each starting with MSH


def _pole_incident(n: int) -> dict[str, Any]:
    c = _child(n)
    return {
        "reference": f"BENCH-{n}", "version": "1", "event_type": "incident_child_present",
        "occurred": {"start": "2024-03-01T22:15:00Z", "end": "2024-03-01T23:40:00Z"},
        "location": {"address_lines": [f"{c} Fictional Road"], "town": "Testtown", "postcode": postcode(c)},
        "persons": [
            {"person_id": "P1", "roles": ["subject_child", "victim"], "forenames": ["Testchild"],
             "surname": f"Example{c}", "date_of_birth": "2015-01-02", "gender": "female",
             "nhs_number": nhs_number(c)},
            {"person_id": "P2", "roles": ["parent", "victim"], "forenames": ["Testparent"], "surname": "Example",
             "date_of_birth": "1990-06-07", "gender": "female", "relationship_to_child": "mother",
             "parental_responsibility": True},
            {"person_id": "P3", "roles": ["suspect"], "forenames": ["Testsuspect"], "surname": "Sample",
             "date_of_birth": "1988-03-04", "gender": "male", "pnc_id": "99/0000001Z",
             "relationship_to_child": "partner_of_parent"}],
        "children_present": 1, "summary": "Fictitious benchmark summary.",
        "incident_codes": [{"scheme": "nsir_category", "code": "Domestic Incident"},
                           {"scheme": "nsir_qualifier", "code": "Domestic Abuse"}],
        "offences": [{"home_office_code": "008/01", "description": "Assault with injury"}],
        "dash_risk": ("standard", "medium", "high")[n % 3],
    }


def _pole_body(records: list[dict[str, Any]], _first: int) -> bytes:
    return orjson.dumps({"force_code": "99", "system": "benchrms", "records": records})


def _ctf_pupil(n: int) -> str:
    c = _child(n)
    return f"""<Pupil><UPN>{pupil_number(c)}</UPN><Surname>Example{c}</Surname><Forename>Testpupil</Forename>
<DOB>2012-02-29</DOB><Sex>M</Sex><LookedAfter><InCare>false</InCare></LookedAfter>
<Attendance><YearData><Year>2023</Year><SessionsPossible>100</SessionsPossible>
<SessionsAuthorised>5</SessionsAuthorised><SessionsUnauthorised>{4 + n % 10}</SessionsUnauthorised></YearData>
</Attendance></Pupil>"""


def _ctf_body(pupils: list[str], first: int) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<CTfile><Header><DocumentName>Common Transfer File</DocumentName><CTFversion>24.0</CTFversion>
<DateTime>{_stamp(first)}</DateTime><DocumentQualifier>partial</DocumentQualifier>
<SourceSchool><LEA>380</LEA><Estab>9998</Estab><URN>{school_urn(_child(first))}</URN>
<SchoolName>Example Academy (fictitious)</SchoolName>
</SourceSchool><DestSchool><LEA>380</LEA><Estab>9999</Estab></DestSchool></Header>
<CTFpupilData>{"".join(pupils)}</CTFpupilData></CTfile>""".encode()


def _cme_pupil(n: int) -> str:
    c = _child(n)
    return f"""<Pupil><UPN>{pupil_number(c)}</UPN><Surname>Example{c}</Surname><Forename>Testpupil</Forename>
<DOB>2014-08-09</DOB><Sex>F</Sex><Address><AddressLines><AddressLine1>{c} Example Close</AddressLine1>
</AddressLines><PostCode>{postcode(c, "AC")}</PostCode></Address><LeavingDate>2025-01-31</LeavingDate>
<GroundsForRemoval>B</GroundsForRemoval></Pupil>"""


def _cme_body(pupils: list[str], first: int) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<CTfile><Header><DocumentName>Children Missing Education</DocumentName><CTFversion>25.0</CTFversion>
<DateTime>{_stamp(first)}</DateTime><DocumentQualifier>partial</DocumentQualifier>
<SourceSchool><LEA>380</LEA><Estab>9999</Estab><URN>{school_urn(_child(first))}</URN>
<SchoolName>Testing Primary (fictitious)</SchoolName>
</SourceSchool><DestSchool><LEA>380</LEA><Estab>LLLL</Estab></DestSchool></Header>
<CMEpupilData>{"".join(pupils)}</CMEpupilData></CTfile>""".encode()


def _cin_child(n: int) -> str:
    c = _child(n)
    return f"""<Child><ChildIdentifiers>
<LAchildID>BENCH{c:05d}</LAchildID><UPN>{pupil_number(c)}</UPN><PersonBirthDate>2014-06-15</PersonBirthDate>
<GenderCurrent>2</GenderCurrent></ChildIdentifiers><ChildCharacteristics><Ethnicity>WBRI</Ethnicity>
<Disabilities><Disability>NONE</Disability></Disabilities></ChildCharacteristics><CINdetails>
<CINreferralDate>{_day(n)}</CINreferralDate><ReferralSource>5A</ReferralSource><PrimaryNeedCode>N1</PrimaryNeedCode>
<Section47><S47ActualStartDate>{_day(n, 10)}</S47ActualStartDate><InitialCPCtarget>{_day(n, 31)}</InitialCPCtarget>
<DateOfInitialCPC>{_day(n, 28)}</DateOfInitialCPC><ICPCnotRequired>false</ICPCnotRequired></Section47>
<ReferralNFA>false</ReferralNFA><ChildProtectionPlans><CPPstartDate>{_day(n, 28)}</CPPstartDate>
<InitialCategoryOfAbuse>NEG</InitialCategoryOfAbuse><LatestCategoryOfAbuse>NEG</LatestCategoryOfAbuse>
<NumberOfPreviousCPP>0</NumberOfPreviousCPP></ChildProtectionPlans></CINdetails></Child>"""


def _cin_body(children: list[str], first: int) -> bytes:
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<Message><Header><CollectionDetails><Collection>CIN</Collection><Year>2022</Year>
<ReferenceDate>2022-03-31</ReferenceDate></CollectionDetails><Source><SourceLevel>L</SourceLevel><LEA>999</LEA>
<SoftwareCode>Bench</SoftwareCode><Release>1</Release><SerialNo>{first % 1000:03d}</SerialNo>
<DateTime>{_stamp(first)}</DateTime></Source></Header><Children>{"".join(children)}</Children></Message>""".encode()


def _ssda903_episode(n: int) -> str:
    c = _child(n)
    home, placed = postcode(c, "AA"), postcode(c + 1, "AB")
    return f"B{c:05d},{_day(n, fmt='%d/%m/%Y')},S,C2,N1,U1,PR1,,,,{home},{placed},SC999999\r\n"


def _ssda903_body(rows: list[str], _first: int) -> bytes:
    return ("CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN\r\n"
            + "".join(rows)).encode()


FORMATS: tuple[Format, ...] = (
    Format("health.fhir", "health", "application/fhir+json", 3, _fhir_patient, _fhir_body),
    Format("health.hl7v2", "health", "x-application/hl7-v2+er7", 3, _hl7_adt, _hl7_body),
    Format("police.pole", "police", "application/vnd.mash.pole+json", 3, _pole_incident, _pole_body),
    Format("education.ctf", "education", "application/xml", 2, _ctf_pupil, _ctf_body),
    Format("education.cme", "education", "application/xml", 1, _cme_pupil, _cme_body),
    Format("social_care.cin", "social_care", "application/xml", 2, _cin_child, _cin_body),
    Format("social_care.ssda903", "social_care", "text/csv", 1, _ssda903_episode, _ssda903_body, system="999"),
)

BY_NAME = {f.name: f for f in FORMATS}


def fhir_patient(n: int) -> bytes:
    """A UK Core Patient (one resource, no Bundle)."""
    return BY_NAME["health.fhir"].make(n)


def pole_incident(n: int) -> bytes:
    return BY_NAME["police.pole"].make(n)


def ctf_pupil(n: int) -> bytes:
    """A CTF file with one pupil."""
    return BY_NAME["education.ctf"].make(n)


def usable_formats() -> tuple[list[Format], list[str], dict[str, int]]:
    """The formats whose adapter is registered and whose template adapts cleanly, why the others were left out, and
    how many events one record of each format makes."""
    from broker.pipeline.identify import LinkageKey
    from broker.pipeline.intake import prepare

    registered = {a.name for a in all_adapters()}
    key = LinkageKey(1, b"bench-linkage-key-fictitious-001")
    kept, skipped, counts = [], [], {}
    for fmt in FORMATS:
        if fmt.name not in registered:
            skipped.append(f"{fmt.name}: adapter not registered")
            continue
        ctx = AdaptContext(source="bench", received_at="2026-01-01T00:00:00Z", system=fmt.system)
        prepared = prepare(fmt.agency, fmt.make(1), ctx, key, content_type=fmt.content_type)
        if prepared.adapter != fmt.name or not prepared.events or prepared.rejections:
            skipped.append(f"{fmt.name}: synthetic record did not adapt cleanly "
                           f"({len(prepared.events)} events, {len(prepared.rejections)} rejections)")
            continue
        kept.append(fmt)
        counts[fmt.name] = len(prepared.events)
    return kept, skipped, counts


def mix(formats: list[Format], count: int, batch: int = 1) -> list[tuple[Format, tuple[int, ...]]]:
    """`count` bodies, interleaved by format weight, each (format, the numbers of its `batch` records)."""
    wheel = [f for f in formats for _ in range(f.weight)]
    return [(wheel[i % len(wheel)], tuple(range(i * batch, (i + 1) * batch))) for i in range(count)]
