"""Synthetic, clearly fictitious CIN census and SSDA903 inputs. Element order follows the DfE XSD sequence, so a
default 2022 message is schema-valid. UPNs use LA 201, establishment 0000: check letters valid unless stated."""

from __future__ import annotations

from collections.abc import Iterable

from adapters.kit.interface import AdaptContext

CTX = AdaptContext(source="cin.xml", received_at="2024-05-01T09:00:00Z")
CSV_CTX = AdaptContext(source="903.csv", received_at="2024-05-01T09:00:00Z", system="999")
CHILD_ID = "TESTCHILD01"
VALID_UPN = "Y201000000001"
OTHER_VALID_UPN = "M201000000002"
BAD_CHECK_UPN = "A201000000001"  # right shape, wrong check letter


def leaf(name: str, value: str | None) -> str:
    return "" if value is None else f"<{name}>{value}</{name}>"


def group(name: str, *content: str) -> str:
    return f"<{name}>{''.join(content)}</{name}>"


def identifiers(la_id: str | None = CHILD_ID, upn: str | None = VALID_UPN, former: str | None = None,
                unknown: str | None = None, dob: str | None = "2014-06-15", expected: str | None = None,
                sex_element: str = "GenderCurrent", sex: str | None = "2", death: str | None = None,
                extra: str = "") -> str:
    return group("ChildIdentifiers", leaf("LAchildID", la_id), leaf("UPN", upn), leaf("FormerUPN", former),
                 leaf("UPNunknown", unknown), leaf("PersonBirthDate", dob), leaf("ExpectedPersonBirthDate", expected),
                 leaf(sex_element, sex), leaf("PersonDeathDate", death), extra)


def characteristics(ethnicity: str = "WBRI", disabilities: Iterable[str] = ("NONE",)) -> str:
    items = "".join(leaf("Disability", d) for d in disabilities)
    return group("ChildCharacteristics", leaf("Ethnicity", ethnicity),
                 group("Disabilities", items) if items else "")


def assessment(start: str | None = "2023-05-10", review: str | None = "2023-05-24",
               authorised: str | None = "2023-06-20", factors: Iterable[str] = ("16A", "3A")) -> str:
    items = "".join(leaf("AssessmentFactors", f) for f in factors)
    return group("Assessments", leaf("AssessmentActualStartDate", start), leaf("AssessmentInternalReviewDate", review),
                 leaf("AssessmentAuthorisationDate", authorised),
                 group("FactorsIdentifiedAtAssessment", items) if items else "")


def plan_dates(start: str = "2023-05-20", end: str | None = "2023-05-29") -> str:
    return group("CINPlanDates", leaf("CINPlanStartDate", start), leaf("CINPlanEndDate", end))


def section47(start: str | None = "2023-05-12", target: str | None = "2023-06-02", icpc: str | None = "2023-05-30",
              not_required: str = "false") -> str:
    return group("Section47", leaf("S47ActualStartDate", start), leaf("InitialCPCtarget", target),
                 leaf("DateOfInitialCPC", icpc), leaf("ICPCnotRequired", not_required))


def plan(start: str | None = "2023-05-30", end: str | None = "2024-02-20", initial: str = "NEG",
         latest: str = "EMO", previous: str = "1", reviews: Iterable[str] = ("2023-08-30", "2024-01-15")) -> str:
    items = "".join(leaf("CPPreviewDate", r) for r in reviews)
    return group("ChildProtectionPlans", leaf("CPPstartDate", start), leaf("CPPendDate", end),
                 leaf("InitialCategoryOfAbuse", initial), leaf("LatestCategoryOfAbuse", latest),
                 leaf("NumberOfPreviousCPP", previous), group("Reviews", items) if items else "")


def details(referral: str | None = "2023-05-02", source: str = "5A", need: str | None = "N1",
            closure: str | None = "2024-03-01", reason: str | None = "RC7", icpc: str | None = None,
            assessments: Iterable[str] = (), plans_dates: Iterable[str] = (), s47s: Iterable[str] = (),
            nfa: str = "false", plans: Iterable[str] = ()) -> str:
    return group("CINdetails", leaf("CINreferralDate", referral), leaf("ReferralSource", source),
                 leaf("PrimaryNeedCode", need), leaf("CINclosureDate", closure), leaf("ReasonForClosure", reason),
                 leaf("DateOfInitialCPC", icpc), *assessments, *plans_dates, *s47s, leaf("ReferralNFA", nfa), *plans)


def full_details(**overrides: str | None) -> str:
    """One episode of need with every group: assessment, CIN plan, section 47, a plan with two reviews, closure."""
    return details(assessments=[assessment()], plans_dates=[plan_dates()], s47s=[section47()], plans=[plan()],
                   **overrides)


def child(ids: str | None = None, chars: str | None = None, *cin_details: str) -> str:
    return group("Child", identifiers() if ids is None else ids, characteristics() if chars is None else chars,
                 *(cin_details or (full_details(),)))


def message(*children: str, year: int | None = 2022, lea: str | None = "999",
            reference: str = "2022-03-31") -> bytes:
    collection = group("CollectionDetails", leaf("Collection", "CIN"), leaf("Year", str(year) if year else None),
                       leaf("ReferenceDate", reference))
    source = group("Source", leaf("SourceLevel", "L"), leaf("LEA", lea), leaf("SoftwareCode", "Test"),
                   leaf("Release", "1"), leaf("SerialNo", "001"), leaf("DateTime", "2024-04-30T10:00:00"))
    header = group("Header", collection, source)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            + group("Message", header, group("Children", *(children or (child(),))))).encode()


def csv_file(header: str, *rows: str) -> bytes:
    return ("\r\n".join([header, *rows]) + "\r\n").encode()


EPISODES_HEADER = "CHILD,DECOM,RNE,LS,CIN,PLACE,PLACE_PROVIDER,DEC,REC,REASON_PLACE_CHANGE,HOME_POST,PL_POST,URN"
HEADER_HEADER = "CHILD,SEX,DOB,ETHNIC,UPN,MOTHER,MC_DOB"
MISSING_HEADER = "CHILD,MISSING,MIS_START,MIS_END"
