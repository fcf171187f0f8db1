"""NCPDP Telecommunication D.0 transmissions written for tests (synthetic data): a
transaction header and segments of two-character fields, with the standard's
separators."""

from __future__ import annotations

SEGMENT, GROUP, FIELD = "\x1e", "\x1d", "\x1c"

# 202-B2 01 with 201-B1 (an NPI), as a pharmacy switch sends it.
PHARMACY_NPI = "1234567893"
PRESCRIBER_NPI = "1245319599"


def header(
    *,
    transaction: str = "B1",
    count: int = 1,
    date_of_service: str = "20260105",
    provider: str = PHARMACY_NPI,
    version: str = "D0",
) -> str:
    """The fixed 56-character transaction header."""
    parts = [
        ("610591", 6),  # 101-A1 BIN
        (version, 2),  # 102-A2
        (transaction, 2),  # 103-A3
        ("PCN123", 10),  # 104-A4
        (str(count), 1),  # 109-A9
        ("01", 2),  # 202-B2 NPI
        (provider, 15),  # 201-B1
        (date_of_service, 8),  # 401-D1
        ("SWVENDOR01", 10),  # 110-AK
    ]
    return "".join(value.ljust(width) for value, width in parts)


def segment(code: str, *fields: tuple[str, str]) -> str:
    return SEGMENT + FIELD + "AM" + code + "".join(FIELD + fid + value for fid, value in fields)


def insurance(cardholder: str = "M0000001", relationship: str = "1") -> str:
    return segment("04", ("C2", cardholder), ("C1", "GRP100"), ("C3", "001"), ("C6", relationship))


def patient(
    first: str = "PAT", last: str = "DOE", birth: str = "19800214", gender: str = "2"
) -> str:
    return segment("01", ("CA", first), ("CB", last), ("C4", birth), ("C5", gender))


def claim(
    rx: str,
    ndc: str,
    *,
    fill: str = "0",
    days: str = "30",
    quantity: str = "30000",
    daw: str = "0",
    refills: str = "5",
    extra: tuple[tuple[str, str], ...] = (),
) -> str:
    fields = [
        ("EM", "1"),
        ("D2", rx),
        ("E1", "03"),
        ("D7", ndc),
        ("E7", quantity),
        ("D3", fill),
        ("D5", days),
        ("D6", "1"),
        ("D8", daw),
        ("DE", "20260102"),
        ("DF", refills),
        ("DJ", "1"),
        ("28", "EA"),
        *extra,
    ]
    return segment("07", *fields)


def prescriber(npi: str = PRESCRIBER_NPI) -> str:
    return segment("03", ("EZ", "01"), ("DB", npi), ("DR", "SMITH"))


def pricing() -> str:
    """Amounts a billing request carries; the non-financial mapping reads none."""
    return segment("11", ("D9", "1250{"), ("DC", "150{"), ("DQ", "2000{"), ("DU", "1400{"))


def transmission(*groups: str, common: str | None = None, **head: str) -> str:
    """One transmission: the header, the patient and insurance segments, then each
    transaction group (claim, prescriber, pricing...) after a group separator."""
    common = patient() + insurance() if common is None else common
    return header(count=len(groups), **head) + common + "".join(GROUP + g for g in groups)  # type: ignore[arg-type]


def a_fill(rx: str, ndc: str, **claim_fields: str) -> str:
    return claim(rx, ndc, **claim_fields) + prescriber() + pricing()  # type: ignore[arg-type]
