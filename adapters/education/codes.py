"""DfE code lists the education adapters translate into canonical values."""

from __future__ import annotations

# CBDS sex/gender codes (CTF <Sex> or <Gender>, School Census <Sex>).
SEX = {"M": "male", "F": "female", "U": "unknown", "X": "other", "O": "other", "9": "unknown", "0": "unknown"}

# CBDS "relationship to pupil" codes -> canonical role. Parental responsibility is not inferred from the code: the CTF
# sends it explicitly in <Responsibility>. Codes not listed become role "other" with the code kept.
RELATIONSHIP_ROLE = {
    "PAR": "parent", "MUM": "parent", "DAD": "parent", "PAM": "parent", "PAF": "parent",
    "STP": "parent", "STM": "parent", "STF": "parent",  # step-parents
    "CAR": "carer", "FOC": "carer", "FOM": "carer", "FOF": "carer", "CHM": "carer",  # carers, foster, childminder
    "GUA": "guardian", "GRD": "guardian",
    "DOC": "professional", "SWR": "professional", "HTR": "professional",  # doctor, social worker, head teacher
    "FAM": "other", "REL": "other", "GRM": "other", "GRF": "other", "OTH": "other",
}

# School Census exclusion category -> canonical category. FIXD was renamed SUSP (suspension) from 2022/23.
EXCLUSION_CATEGORY = {"PERM": "permanent", "FIXD": "suspension", "SUSP": "suspension", "LNCH": "lunchtime"}

# A CTF sent when the destination is not known names the "lost pupils" database: LEA MMM, Estab MMMM.
UNKNOWN_DESTINATION = {"MMM", "MMMM", "XXX", "XXXX"}
