"""Street address standardisation: house number, USPS-abbreviated street, unit.

A street address is split into three parts that compare separately:

* the house number (``"123"``, ``"12B"``), kept apart because it is the most
  typo-prone and the most telling part;
* the street, upper case, with USPS Publication 28 street-suffix and
  directional abbreviations (``"North Main Street"`` -> ``"N MAIN ST"``) and
  spelled-out ordinals as numbers (``"First Avenue"`` -> ``"1ST AVE"``);
* the unit, whatever follows a secondary-unit designator (``Apt``, ``Unit``,
  ``#``, ``Ste``...), so ``"Apt 4B"``, ``"#4B"`` and ``"Unit 4-B"`` agree.

A PO Box becomes street ``"PO BOX"`` with the box number as house number.
City and state are not compared: the ZIP code carries that evidence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

__all__ = ["StreetAddress", "standard_street_address"]


class StreetAddress(NamedTuple):
    house_number: str | None
    street: str | None
    unit: str | None


# USPS Publication 28, Appendix C1 (the common street suffixes and their variants).
_SUFFIXES = {
    "ALLEY": "ALY",
    "ALLY": "ALY",
    "AVENUE": "AVE",
    "AV": "AVE",
    "AVEN": "AVE",
    "AVN": "AVE",
    "AVNUE": "AVE",
    "BOULEVARD": "BLVD",
    "BOUL": "BLVD",
    "BOULV": "BLVD",
    "BRIDGE": "BRG",
    "BYPASS": "BYP",
    "CAUSEWAY": "CSWY",
    "CENTER": "CTR",
    "CENTRE": "CTR",
    "CIRCLE": "CIR",
    "CIRC": "CIR",
    "CIRCL": "CIR",
    "CRCL": "CIR",
    "COURT": "CT",
    "COVE": "CV",
    "CREEK": "CRK",
    "CRESCENT": "CRES",
    "CROSSING": "XING",
    "DRIVE": "DR",
    "DRIV": "DR",
    "DRV": "DR",
    "EXPRESSWAY": "EXPY",
    "EXPRESS": "EXPY",
    "EXTENSION": "EXT",
    "FREEWAY": "FWY",
    "GARDENS": "GDNS",
    "GROVE": "GRV",
    "HEIGHTS": "HTS",
    "HIGHWAY": "HWY",
    "HIWAY": "HWY",
    "HOLLOW": "HOLW",
    "JUNCTION": "JCT",
    "LAKE": "LK",
    "LANE": "LN",
    "LOOP": "LOOP",
    "MANOR": "MNR",
    "MEADOWS": "MDWS",
    "MOUNT": "MT",
    "MOUNTAIN": "MTN",
    "PARKWAY": "PKWY",
    "PARKWY": "PKWY",
    "PKY": "PKWY",
    "PLACE": "PL",
    "PLAZA": "PLZ",
    "POINT": "PT",
    "RIDGE": "RDG",
    "ROAD": "RD",
    "ROUTE": "RTE",
    "SQUARE": "SQ",
    "SQR": "SQ",
    "STATION": "STA",
    "STREET": "ST",
    "STR": "ST",
    "STRT": "ST",
    "TERRACE": "TER",
    "TERR": "TER",
    "TRACE": "TRCE",
    "TRAIL": "TRL",
    "TRAILS": "TRL",
    "TURNPIKE": "TPKE",
    "VALLEY": "VLY",
    "VIEW": "VW",
    "VILLAGE": "VLG",
    "VISTA": "VIS",
    "WALK": "WALK",
    "WAY": "WAY",
}
_DIRECTIONALS = {
    "NORTH": "N",
    "SOUTH": "S",
    "EAST": "E",
    "WEST": "W",
    "NORTHEAST": "NE",
    "NORTHWEST": "NW",
    "SOUTHEAST": "SE",
    "SOUTHWEST": "SW",
    "NO": "N",
    "SO": "S",
}
_ORDINALS = {
    "FIRST": "1ST",
    "SECOND": "2ND",
    "THIRD": "3RD",
    "FOURTH": "4TH",
    "FIFTH": "5TH",
    "SIXTH": "6TH",
    "SEVENTH": "7TH",
    "EIGHTH": "8TH",
    "NINTH": "9TH",
    "TENTH": "10TH",
    "ELEVENTH": "11TH",
    "TWELFTH": "12TH",
}
# USPS secondary unit designators; the unit is the token that follows one.
_UNIT_DESIGNATORS = frozenset(
    {
        "APT",
        "APARTMENT",
        "UNIT",
        "STE",
        "SUITE",
        "RM",
        "ROOM",
        "FL",
        "FLOOR",
        "BLDG",
        "BUILDING",
        "LOT",
        "SPC",
        "SPACE",
        "TRLR",
        "TRAILER",
        "DEPT",
        "OFC",
        "OFFICE",
        "PH",
        "PENTHOUSE",
        "#",
    }
)
_REWRITES = {**_SUFFIXES, **_DIRECTIONALS, **_ORDINALS}
_TOKEN = re.compile(r"#|[A-Z0-9]+")
_PO_BOX = re.compile(r"^(?:P\s*O|POST\s+OFFICE)\s*BOX\s*([A-Z0-9]+)")


def standard_street_address(lines: Sequence[str]) -> StreetAddress:
    """Standardise the street lines of an address (city, state and ZIP excluded)."""
    text = " ".join(line for line in lines if isinstance(line, str)).upper()
    text = text.replace(".", "").replace("'", "")
    po_box = _PO_BOX.search(text)
    if po_box:
        return StreetAddress(po_box.group(1), "PO BOX", None)
    tokens = _TOKEN.findall(text.replace("-", ""))
    unit_parts: list[str] = []
    street_tokens: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in _UNIT_DESIGNATORS:
            # "Apt # 4" and "Apt 4" name the same unit; keep the identifying token only.
            i += 1
            while i < len(tokens) and tokens[i] in _UNIT_DESIGNATORS:
                i += 1
            if i < len(tokens):
                unit_parts.append(tokens[i])
        else:
            street_tokens.append(token)
        i += 1
    house_number = None
    if street_tokens and street_tokens[0][0].isdigit() and not _is_ordinal(street_tokens[0]):
        house_number = street_tokens.pop(0)
    street = " ".join(_REWRITES.get(token, token) for token in street_tokens) or None
    return StreetAddress(house_number, street, "".join(unit_parts) or None)


def _is_ordinal(token: str) -> bool:
    # "1st Ave" without a house number: the leading token is the street, not a number.
    return token[-2:] in {"ST", "ND", "RD", "TH"} and token[:-2].isdigit()
