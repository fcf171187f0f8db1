"""How complete an answer is, on the wire: the completeness OperationOutcome (pure).

An old payer that could not give all of a member's record puts, in its ``$everything``
or search Bundle, one entry whose resource is an OperationOutcome (``search.mode =
"outcome"``) with one issue per gap: which of its sources was missing, why, which
resource types it would have given, and whether asking again may help::

    {"severity": "warning", "code": "incomplete",
     "details": {"coding": [{"system": COMPLETENESS_SYSTEM, "code": "source-unavailable"}],
                 "text": "..."},
     "diagnostics": "source 'claims' did not answer within 2.0 s",
     "expression": ["ExplanationOfBenefit", "Coverage"],
     "extension": [{"url": SOURCE_EXTENSION, "valueString": "claims"},
                   {"url": RETRY_EXTENSION, "valueBoolean": true}]}

The old payer builds it with ``completeness_outcome`` (or ``outcome_entry``); the new
payer reads it with ``gaps_of``. Another payer's OperationOutcome that does not carry our
extensions still means the answer is incomplete: any issue of severity warning, error or
fatal is a gap (source unknown; types from ``expression`` when present, else unknown).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from payerbridge.backends.ports import SourceGap

__all__ = [
    "COMPLETENESS_SYSTEM",
    "GAP_CODES",
    "RETRY_EXTENSION",
    "SOURCE_EXTENSION",
    "SOURCE_ERROR",
    "SOURCE_TIMEOUT",
    "SOURCE_UNAVAILABLE",
    "UNKNOWN",
    "Gap",
    "completeness_outcome",
    "gaps_of",
    "is_outcome_entry",
    "outcome_entry",
]

COMPLETENESS_SYSTEM = "https://payerbridge.dev/fhir/CodeSystem/completeness"
SOURCE_EXTENSION = "https://payerbridge.dev/fhir/StructureDefinition/completeness-source"
RETRY_EXTENSION = "https://payerbridge.dev/fhir/StructureDefinition/completeness-retry"

SOURCE_UNAVAILABLE = "source-unavailable"  # down, or refused the call
SOURCE_TIMEOUT = "source-timeout"  # did not answer within the budget
SOURCE_ERROR = "source-error"  # answered, wrongly
GAP_CODES = frozenset({SOURCE_UNAVAILABLE, SOURCE_TIMEOUT, SOURCE_ERROR})

# What a gap says when the outcome does not: its source, its types, its code.
UNKNOWN = "unknown"
_GAP_SEVERITIES = frozenset({"warning", "error", "fatal"})
_TEXTS = {
    SOURCE_UNAVAILABLE: "a source of the member's record was unavailable",
    SOURCE_TIMEOUT: "a source of the member's record did not answer in time",
    SOURCE_ERROR: "a source of the member's record answered with an error",
}


# What an answer lacks: from which source, which types, why, whether asking again may
# help; the old payer's live sources give these (backends.ports), the new payer reads them.
Gap = SourceGap


def completeness_outcome(gaps: Iterable[Gap]) -> dict[str, Any]:
    """The OperationOutcome that tells the requester what an answer lacks, one issue per
    gap (``gaps`` must not be empty: a complete answer carries no outcome)."""
    issues = [_issue(gap) for gap in gaps]
    if not issues:
        raise ValueError("a completeness OperationOutcome needs at least one gap")
    return {"resourceType": "OperationOutcome", "issue": issues}


def outcome_entry(gaps: Iterable[Gap]) -> dict[str, Any]:
    """``completeness_outcome`` as the Bundle entry an answer carries it in."""
    return {"resource": completeness_outcome(gaps), "search": {"mode": "outcome"}}


def _issue(gap: Gap) -> dict[str, Any]:
    coding = {"system": COMPLETENESS_SYSTEM, "code": gap.code}
    return {
        "severity": "warning",
        "code": "incomplete",
        "details": {"coding": [coding], "text": _TEXTS.get(gap.code, gap.text)},
        "diagnostics": gap.text,
        "expression": list(gap.types),
        "extension": [
            {"url": SOURCE_EXTENSION, "valueString": gap.source},
            {"url": RETRY_EXTENSION, "valueBoolean": gap.retry_may_help},
        ],
    }


def is_outcome_entry(entry: Any) -> bool:
    """Whether a Bundle entry carries an OperationOutcome (``search.mode`` outcome, or
    an OperationOutcome whatever its mode): the answer's word on itself, not data."""
    if not isinstance(entry, dict):
        return False
    resource = entry.get("resource")
    if isinstance(resource, dict) and resource.get("resourceType") == "OperationOutcome":
        return True
    search = entry.get("search")
    return isinstance(search, dict) and search.get("mode") == "outcome"


def gaps_of(answer: Any) -> list[Gap]:
    """The gaps an answer declares: ``answer`` is a Bundle (every OperationOutcome entry
    read) or an OperationOutcome. An issue of severity information declares none."""
    if not isinstance(answer, dict):
        return []
    if answer.get("resourceType") == "OperationOutcome":
        return [gap for issue in _issues(answer) if (gap := _gap(issue)) is not None]
    if answer.get("resourceType") != "Bundle" or not isinstance(answer.get("entry"), list):
        return []
    return [
        gap
        for entry in answer["entry"]
        if is_outcome_entry(entry)
        for gap in gaps_of(entry.get("resource"))
    ]


def _issues(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    issues = outcome.get("issue")
    return [i for i in issues if isinstance(i, dict)] if isinstance(issues, list) else []


def _gap(issue: dict[str, Any]) -> Gap | None:
    if issue.get("severity") not in _GAP_SEVERITIES:
        return None
    extensions = _extensions(issue)
    source = extensions.get(SOURCE_EXTENSION, {}).get("valueString")
    retry = extensions.get(RETRY_EXTENSION, {}).get("valueBoolean")
    code = _our_code(issue.get("details")) or str(issue.get("code") or UNKNOWN)
    types = tuple(t for t in _strings(issue.get("expression")) if _is_type_name(t))
    details = issue.get("details")
    text = issue.get("diagnostics") or (details.get("text") if isinstance(details, dict) else None)
    return Gap(
        source=source if isinstance(source, str) and source else UNKNOWN,
        types=types or (UNKNOWN,),
        code=code,
        text=str(text or _TEXTS.get(code, "the answer says it is incomplete"))[:500],
        # Without our word on it, asking again is worth a try: the other payer said
        # something was missing, not that it never will be there.
        retry_may_help=retry if isinstance(retry, bool) else True,
    )


def _extensions(issue: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = issue.get("extension")
    if not isinstance(found, list):
        return {}
    return {e["url"]: e for e in found if isinstance(e, dict) and isinstance(e.get("url"), str)}


def _our_code(details: Any) -> str | None:
    if not isinstance(details, dict) or not isinstance(details.get("coding"), list):
        return None
    for coding in details["coding"]:
        if isinstance(coding, dict) and coding.get("system") == COMPLETENESS_SYSTEM:
            code = coding.get("code")
            return code if isinstance(code, str) else None
    return None


def _strings(value: Any) -> Sequence[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _is_type_name(text: str) -> bool:
    """A resource type name (``expression`` may hold FHIRPath such as ``Bundle.entry[2]``:
    its first step is a type only when nothing follows it)."""
    return text.isalpha() and text[:1].isupper()
