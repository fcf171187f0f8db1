"""A roster a plan loads (ADR 0059): which provider is attributed which member for which
days, as CSV (``provider_npi,patient_id,start,end``; ``end`` may be empty: open) or as a
FHIR Group (ATR- or PDex-style: the provider's NPI as the Group's identifier or its
``characteristic.valueReference``, each ``member.entity`` a ``Patient/<id>`` with its
``period``). Pure; every defect is named with its line or member index, and a roster
with any is refused whole."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from payerbridge.errors import InvalidInput, Issue
from payerbridge.fhir.codes import NPI_SYSTEM
from payerbridge.npi import is_valid_npi
from payerbridge.provider_access.model import Attribution, AttributionBasis
from payerbridge.timestamps import day_of
from payerbridge.types import MemberId

__all__ = ["OPEN_END", "RosterEntry", "roster_from_csv", "roster_from_group", "roster_attributions"]

OPEN_END = date(9999, 12, 31)  # an attribution the roster gives no end
_COLUMNS = ("provider_npi", "patient_id", "start", "end")
_MAX_ISSUES = 20


@dataclass(frozen=True)
class RosterEntry:
    provider_npi: str
    member_id: MemberId
    start: date
    end: date
    where: str  # "line 3" or "Group.member[2]", for errors


def _day(value: str, *, open_end: bool) -> date | None:
    return OPEN_END if not value and open_end else day_of(value)


def _entry(npi: str, patient: str, start: str, end: str, where: str) -> RosterEntry | str:
    """The entry, or what is wrong with it (no values: a roster holds member ids)."""
    if not is_valid_npi(npi):
        return f"{where}: the provider's NPI is not 10 digits with a valid check digit"
    if not patient or len(patient) > 64 or "/" in patient:
        return f"{where}: the member is not a Patient id"
    first, last = _day(start, open_end=False), _day(end, open_end=True)
    if first is None or last is None:
        return f"{where}: start and end are dates (YYYY-MM-DD); end may be empty"
    if last < first:
        return f"{where}: the attribution ends before it starts"
    return RosterEntry(npi, MemberId(patient), first, last, where)


def _checked(found: Sequence[RosterEntry | str], name: str) -> list[RosterEntry]:
    problems = [p for p in found if isinstance(p, str)]
    if problems:
        raise InvalidInput(
            f"the roster {name} has {len(problems)} defective entries; nothing was loaded",
            issues=[Issue(p) for p in problems[:_MAX_ISSUES]],
        )
    entries = [e for e in found if isinstance(e, RosterEntry)]
    if not entries:
        raise InvalidInput(f"the roster {name} attributes no member to any provider")
    return entries


def roster_from_csv(text: str, name: str) -> list[RosterEntry]:
    """A CSV roster's entries; a header naming the four columns comes first."""
    reader = csv.reader(io.StringIO(text))
    header = [h.strip().lower() for h in next(reader, [])]
    if tuple(header) != _COLUMNS:
        raise InvalidInput(
            f"the roster {name} begins with the header {','.join(_COLUMNS)}",
            issues=[Issue("line 1: the header names these four columns in this order")],
        )
    found: list[RosterEntry | str] = []
    for number, row in enumerate(reader, start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(_COLUMNS):
            found.append(f"line {number}: {len(row)} columns, not {len(_COLUMNS)}")
            continue
        npi, patient, start, end = (cell.strip() for cell in row)
        found.append(_entry(npi, patient, start, end, f"line {number}"))
    return _checked(found, name)


def _group_npi(group: Mapping[str, Any]) -> str | None:
    references = [
        c.get("valueReference", {}).get("identifier")
        for c in group.get("characteristic") or ()
        if isinstance(c, dict) and isinstance(c.get("valueReference"), dict)
    ]
    identifiers = [*(group.get("identifier") or ()), *references]
    npis = {
        str(i.get("value"))
        for i in identifiers
        if isinstance(i, dict) and i.get("system") == NPI_SYSTEM
    }
    return npis.pop() if len(npis) == 1 else None


def roster_from_group(group: Any, name: str) -> list[RosterEntry]:
    """A FHIR Group roster's entries: one provider's members."""
    if not isinstance(group, dict) or group.get("resourceType") != "Group":
        raise InvalidInput(f"the roster {name} is not a FHIR Group")
    npi = _group_npi(group)
    if npi is None:
        raise InvalidInput(
            f"the roster {name} names no provider: one NPI ({NPI_SYSTEM}) as the Group's "
            "identifier or its characteristic's valueReference"
        )
    found: list[RosterEntry | str] = []
    for index, member in enumerate(group.get("member") or ()):
        where = f"Group.member[{index}]"
        member = member if isinstance(member, dict) else {}
        if member.get("inactive") is True:
            continue
        reference = str((member.get("entity") or {}).get("reference") or "")
        period: dict[str, Any] = member["period"] if isinstance(member.get("period"), dict) else {}
        if not reference.startswith("Patient/"):
            found.append(f"{where}: entity is not a reference to a Patient")
            continue
        start, end = str(period.get("start") or ""), str(period.get("end") or "")
        found.append(_entry(npi, reference.removeprefix("Patient/"), start, end, where))
    return _checked(found, name)


def roster_attributions(entries: Sequence[RosterEntry], roster: str) -> list[Attribution]:
    """The attributions a roster gives, one per entry, sorted."""
    return sorted(
        Attribution(e.provider_npi, e.member_id, e.start, e.end, AttributionBasis.ROSTER, roster)
        for e in entries
    )
