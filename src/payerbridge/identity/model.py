"""Exact matching rules (pure): a candidate matches when the card and the demographics agree."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = ["MatchDecision", "MatchOutcome", "decide_exact", "normalize_name"]


class MatchOutcome(StrEnum):
    MATCH = "match"
    NO_MATCH = "nomatch"
    MULTIPLE = "multiple"


@dataclass(frozen=True)
class MatchDecision:
    outcome: MatchOutcome
    member_id: str | None
    candidates_considered: int


def normalize_name(value: str) -> str:
    """Case- and accent-insensitive form of a name part ("García" == "GARCIA")."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold().strip()


def _name_keys(patient: dict[str, Any]) -> set[tuple[str, str]]:
    keys = set()
    for name in patient.get("name") or []:
        family = name.get("family")
        given = name.get("given") or []
        if isinstance(family, str) and given and isinstance(given[0], str):
            keys.add((normalize_name(family), normalize_name(given[0])))
    return keys


def demographics_agree(requested: dict[str, Any], candidate: dict[str, Any]) -> bool:
    """Same birth date and a shared (family, first given) name; gender when both state one."""
    if requested.get("birthDate") != candidate.get("birthDate"):
        return False
    if not _name_keys(requested) & _name_keys(candidate):
        return False
    wanted, found = requested.get("gender"), candidate.get("gender")
    return not (wanted and found and wanted != found)


def decide_exact(requested: dict[str, Any], candidates: list[dict[str, Any]]) -> MatchDecision:
    """Decide among the Patients reached through the card's identifiers.

    A request that fits two different people is ``multiple``, never a pick (twins on
    one subscriber id, for instance).
    """
    agreeing = sorted({c["id"] for c in candidates if demographics_agree(requested, c)})
    if not agreeing:
        return MatchDecision(MatchOutcome.NO_MATCH, None, len(candidates))
    if len(agreeing) > 1:
        return MatchDecision(MatchOutcome.MULTIPLE, None, len(candidates))
    return MatchDecision(MatchOutcome.MATCH, agreeing[0], len(candidates))
