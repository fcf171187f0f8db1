"""How each onboarded member ended (pure): its result, the reason code and text of its
end as an exchange's end carries them, and the run's counts by result."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from payerbridge.fhir.bulk_member_match import MatchResult
from payerbridge.onboarding.increments import nothing_new
from payerbridge.onboarding.model import OnboardingMember

__all__ = ["NOT_EXPORTED", "REASON_CODES", "WITHDRAWN", "member_reason", "result_counts"]

# A member whose opt-in stopped permitting the exchange before its data came: not asked
# about, or its data not kept.
WITHDRAWN = "withdrawn"
# Matched, but nothing of the member came in the old payer's export: it left the member
# out when the export ran (its consent decided again there, §pdex-167), and its error file
# says so.
NOT_EXPORTED = "notexported"


def result_counts(members: Sequence[OnboardingMember]) -> dict[str, int]:
    """Members by result (match, nomatch, consentconstraint, withdrawn, notexported);
    those still waiting are not counted."""
    counts = {bucket.value: 0 for bucket in MatchResult} | {WITHDRAWN: 0, NOT_EXPORTED: 0}
    for member in members:
        if member.result is not None:
            counts[member.result] += 1
    return counts


# Each member's end, as a reason code and a text a person can act on (no member data).
_REASONS = {
    MatchResult.NOT_MATCHED.value: (
        "no-match",
        "the old payer found no single member for the demographics and coverage sent; "
        "check them and submit the member again",
    ),
    MatchResult.CONSENT_CONSTRAINED.value: (
        "consent-constraint",
        "the old payer matched the member but its consent policy does not let it share "
        "the member's data",
    ),
    WITHDRAWN: (
        "withdrawn",
        "the member's opt-in was revoked or lapsed before the data was asked for or kept",
    ),
    NOT_EXPORTED: (
        "not-exported",
        "matched, but the old payer's export left the member out (its error file says why)",
    ),
}


# The codes of the ends that are not a success, each with its runbook
# (``docs/runbooks/<code>.md``); a member matched and received ends ``matched`` or ``completed``.
REASON_CODES = frozenset(code for code, _ in _REASONS.values())


def member_reason(member: OnboardingMember, since: datetime | None = None) -> dict[str, str] | None:
    """Why the member ended as it did (None while it waits): its reason code and text,
    as an exchange's end carries them; ``nothing-new`` for one whose answer to an
    incremental run (``since``: the run's) held nothing changed."""
    if member.result is None:
        return None
    if member.result == MatchResult.MATCHED.value:
        if member.imported and member.changed == 0:
            return nothing_new(since)
        if member.imported:
            text = f"matched; {member.imported} resource(s) received and kept"
            return {"code": "completed", "text": text}
        return {"code": "matched", "text": "matched; the member's data has not arrived yet"}
    code, text = _REASONS.get(member.result, (member.result, member.result))
    return {"code": code, "text": text}
