"""The protocol's fixed vocabulary: lawful basis codes, risk order, mask kinds, field actions.

Codes are data the protocol schema and the README enumerate; keep the three in step (a unit test checks that the
schema's enums equal these sets).
"""

from __future__ import annotations

# Lawful basis codes a rule may cite, with the words an IG officer reads in `explain` and the audit.
LAWFUL_BASIS: dict[str, str] = {
    "uk_gdpr_art6_1_c": "UK GDPR Art 6(1)(c): legal obligation",
    "uk_gdpr_art6_1_e": "UK GDPR Art 6(1)(e): public task",
    "consent": "Consent: UK GDPR Art 6(1)(a), and Art 9(2)(a) explicit consent for special category data",
    "uk_gdpr_art9_2_g": ("UK GDPR Art 9(2)(g): substantial public interest"
                         " (needs a DPA 2018 Schedule 1 Part 2 condition)"),
    "uk_gdpr_art9_2_h": "UK GDPR Art 9(2)(h): health or social care",
    "dpa2018_sch1_para18": "DPA 2018 Schedule 1 paragraph 18: safeguarding of children and of individuals at risk",
    "children_act_1989_s17": "Children Act 1989 s17: services for children in need",
    "children_act_1989_s47": "Children Act 1989 s47: enquiry where a child may be suffering significant harm",
    "children_act_2004_s10": "Children Act 2004 s10: co-operation to improve well-being",
    "children_act_2004_s11": "Children Act 2004 s11: duty to safeguard and promote the welfare of children",
    "crime_and_disorder_act_1998_s115": "Crime and Disorder Act 1998 s115: disclosure to prevent crime and disorder",
    "education_act_2002_s175": "Education Act 2002 s175: safeguarding duties of schools and local authorities",
}

ARTICLE_6 = frozenset({"uk_gdpr_art6_1_c", "uk_gdpr_art6_1_e", "consent"})
ARTICLE_9 = frozenset({"uk_gdpr_art9_2_g", "uk_gdpr_art9_2_h"})
SCHEDULE_1 = frozenset({"dpa2018_sch1_para18"})
# Acts that require or permit the sharing whatever the family's wishes: they override a withdrawal or objection.
STATUTORY_GATEWAYS = (
    "children_act_1989_s47", "children_act_1989_s17", "children_act_2004_s11", "children_act_2004_s10",
    "crime_and_disorder_act_1998_s115", "education_act_2002_s175",
)

# Classifications whose release needs more than an Article 6 basis.
SPECIAL_CATEGORY = frozenset({"health", "demographic"})  # Art 9: health, ethnicity
CRIMINAL = frozenset({"criminal"})  # Art 10 / DPA 2018 s10(5): a Schedule 1 condition

RISK_ORDER: dict[str, int] = {"unknown": 0, "none": 1, "low": 2, "medium": 3, "high": 4, "critical": 5}

CONSENT_STATUSES = ("given", "refused", "withdrawn", "not_sought", "not_applicable", "unknown")
RESTRICTIVE_STATUSES = frozenset({"refused", "withdrawn"})

ACTIONS = ("release", "withhold", "mask")
MASK_KINDS: dict[str, str] = {
    "redact": "replaced by the marker '[redacted]': the subscriber learns only that the field is present",
    "partial": "values with digits keep their last 4 characters, others their first letter; the rest is starred",
    "keyed_hash": ("HMAC-SHA256 under the broker's mask key, per subscriber:"
                   " stable for one subscriber, unlinkable across subscribers"),
    "year_only": "a date keeps its year only",
    "age_band": "a date of birth becomes the age band on the event date (unborn, under 1, 1-4, 5-9, 10-15, 16-17, 18+)",
    "postcode_district": "a UK postcode keeps its outward code (district), e.g. 'LS17'",
}

REGISTRATION_KINDS = ("gp_practice", "school")
DELIVERY_MODES = ("kafka", "http-pull", "sse")
KEY_SUITES = {"x25519": 32, "mlkem768-x25519": 1184 + 32}  # raw public key length in bytes
