"""Identity resolution for $member-match (old-payer role): a household-aware
Fellegi-Sunter engine with evidence, a review queue and an identity graph (ADR 0006).

Its sub-rooms: ``demographics`` (FHIR and raw values into the records matching compares)
and ``matching`` (the engine: blocking, comparisons, scoring, rules, decisions and
training). ``model`` holds the room's data, ``ports`` what it needs from the stores."""

from payerbridge.identity.matching.model import MatchDecision, MatchOutcome
from payerbridge.identity.ports import MemberDirectory
from payerbridge.identity.service import match_member

__all__ = ["MatchDecision", "MatchOutcome", "MemberDirectory", "match_member"]
