"""The identity room's data: what matching reads and decides, and what the stores keep.

- ``StandardRecord``: one person as matching sees them (standardised by
  ``identity.demographics.standardize``), and its stored JSON form (``record_to_dict``);
- the identity graph's links and the review queue's cases, their place in the queue
  (``ReviewPriority``, ``QueuePosition``) and a page of it (``ReviewQuery``);
- a member's entry in the identity index and what indexing changes (``IndexChanges``).

A decision, its evidence and a trained model as kept are the matching sub-room's data
(``identity.matching.model``). No logic beyond each type's own form: the rules that make
these live in the room's other modules, the tables that keep them in ``store.identity``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from payerbridge.types import ClientId, MemberId

__all__ = [
    "redacted_repr",
    "IdentityLink",
    "IndexChanges",
    "IndexEntry",
    "IndexSource",
    "LinkKind",
    "QueuePosition",
    "ReviewCase",
    "ReviewDecision",
    "ReviewOpening",
    "ReviewPriority",
    "ReviewQuery",
    "ShowCase",
    "StandardRecord",
    "record_from_dict",
    "record_to_dict",
]


# -- records ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class StandardRecord:
    """One person as matching sees them: standardised values and comparison features.

    It holds demographics, so its ``repr`` names the fields present and never
    their values (a record that reaches a log or a traceback leaks nothing).
    """

    first_name: str | None = None
    first_name_roots: tuple[str, ...] = ()
    given_name_tokens: frozenset[str] = frozenset()
    middle_names: frozenset[str] = frozenset()  # given-name words after the first name
    # The rest of a compound first name written as one ("María José": {"jose"}).
    compound_first_name: frozenset[str] = frozenset()
    family_name: str | None = None
    family_name_tokens: frozenset[str] = frozenset()
    suffix: str | None = None
    birth_date: str | None = None
    sex: str | None = None
    house_number: str | None = None
    street: str | None = None
    unit: str | None = None
    postal_code: str | None = None
    phone: str | None = None
    member_id: str | None = None
    subscriber_id: str | None = None
    ssn: str | None = None
    ssn_carried: bool = False

    def __repr__(self) -> str:
        return redacted_repr(self)


def redacted_repr(person: Any) -> str:
    """A dataclass holding a person's values, as its ``repr``: the fields present named,
    never their values (a record that reaches a log or a traceback leaks nothing)."""
    present = [f.name for f in fields(person) if getattr(person, f.name) not in (None, (), False)]
    return f"{type(person).__name__}(<redacted: {', '.join(present)}>)"


def record_to_dict(record: StandardRecord) -> dict[str, object]:
    """A JSON-ready form, to store a member's standardised record next to the member.

    Matching then reads candidates' records as they are instead of parsing and
    standardising their FHIR resources again. It holds demographics: store it
    as the member data it is, never in logs or evidence.
    """
    data: dict[str, object] = {}
    for f in fields(record):
        value = getattr(record, f.name)
        if isinstance(value, frozenset):
            value = sorted(value)
        elif isinstance(value, tuple):
            value = list(value)
        data[f.name] = value
    return data


_RECORD_FIELDS = tuple(f.name for f in fields(StandardRecord))


def record_from_dict(data: Mapping[str, object]) -> StandardRecord:
    """The record ``record_to_dict`` stored (unknown keys are ignored, missing ones are empty).

    Every candidate of every match passes through here: the field names are read once."""
    values = {name: data[name] for name in _RECORD_FIELDS if name in data}
    for name in ("given_name_tokens", "middle_names", "compound_first_name", "family_name_tokens"):
        if name in values:
            value = values[name]
            values[name] = frozenset(value) if isinstance(value, list) else frozenset()
    if "first_name_roots" in values:
        value = values["first_name_roots"]
        values["first_name_roots"] = tuple(value) if isinstance(value, list) else ()
    return StandardRecord(**values)  # type: ignore[arg-type]


# -- the identity index -----------------------------------------------------------------


@dataclass(frozen=True)
class IndexSource:
    """What the index of some members is built from, as stored (JSON): our members' own
    Patients among them (not the copies received from other payers), in the store's
    order, and every Coverage in their compartments."""

    patients: Mapping[str, str]  # member id -> Patient
    coverages: Mapping[str, Sequence[str]]  # member id -> its Coverages


@dataclass(frozen=True)
class IndexEntry:
    """A member's entry as the index stores it: JSON text, ready to write."""

    member_id: str
    record: str  # the standardised record
    keys: str  # its blocking keys, a sorted list


@dataclass(frozen=True)
class IndexChanges:
    """What indexing a chunk of members changes in the index, against what it held.

    A member indexed for the first time is ``fresh``: its keys are all those listed on
    its record. A member indexed before whose entry is unchanged is left alone; one whose
    entry changed has its record ``replaced`` and only the keys it lost ``removed`` and
    those it gained ``added``; one whose Patient is gone is ``replaced`` by nothing and
    loses every key. Keys are (key, member id) pairs."""

    write: list[IndexEntry] = field(default_factory=list)  # records to write
    replaced: list[str] = field(default_factory=list)  # stored records to remove first
    fresh: list[str] = field(default_factory=list)
    removed: list[tuple[str, str]] = field(default_factory=list)
    added: list[tuple[str, str]] = field(default_factory=list)


# -- the identity graph and the review queue ---------------------------------------------


class LinkKind:
    """Kinds of identity-graph links (strings in the database)."""

    # The system of REVIEWED_REQUEST links: their value is the request's keyed hash.
    MATCH_REQUEST_SYSTEM = "urn:payerbridge:member-match-request"
    # The system of MERGED_INTO links: their value is our surviving member's id.
    MEMBER_SYSTEM = "urn:payerbridge:member"

    UMB = "umb"  # the Unique Member Bundle identifier we handed out at $member-match
    LINKED_COVERAGE = "linked-coverage"  # another payer's member id (CoverageToLink, mm-4)
    LINKED_SUBSCRIBER = "linked-subscriber"  # another payer's subscriber id
    REVIEWED_REQUEST = "reviewed-request"  # a reviewer accepted this request for the member
    MERGED_INTO = "merged-into"  # this member id now means ``value`` (a duplicate merged)


@dataclass(frozen=True)
class ReviewCase:
    id: str
    decision_id: str
    status: str  # open | accepted | rejected
    client_id: ClientId
    request_key: str  # keyed hash of the request: the same request finds its case again
    candidate_ids: tuple[str, ...]
    opened_at: datetime
    member_id: MemberId | None
    reviewer: str | None
    reason: str | None
    decided_at: datetime | None
    # Why the engine opened the case (the decision's ``review_reason``).
    opened_because: str | None = None
    # Each change of the case (a decision, a reopening) adds one: a change sent on an
    # older version was made on a stale page (``identity.reviews``).
    version: int = 1
    # Its place in the queue (``identity.review_queue``); None on a case opened before
    # cases were ranked, which comes first.
    risk: float | None = None
    due_at: datetime | None = None
    policy: str | None = None  # the match policy's name: single_exchange, bulk

    @property
    def is_open(self) -> bool:
        return self.status == "open"

    @property
    def answered_at(self) -> datetime | None:
        """When the request that opened it could be answered: its decision, once decided."""
        return None if self.is_open else self.decided_at

    @property
    def reasons(self) -> tuple[str, ...]:
        """The reasons it was opened for, one by one."""
        return tuple(r.strip() for r in (self.opened_because or "").split(",") if r.strip())

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "decision": self.decision_id,
            "status": self.status,
            "requester": self.client_id,
            "candidates": list(self.candidate_ids),
            "opened_at": self.opened_at,
            "opened_because": self.opened_because,
            "member": self.member_id,
            "reviewer": self.reviewer,
            "reason": self.reason,
            "decided_at": self.decided_at,
            "version": self.version,
            "risk": self.risk,
            "due_at": self.due_at,
            "policy": self.policy,
        }


@dataclass(frozen=True)
class IdentityLink:
    """One edge of the identity graph: our member is known as ``system|value``."""

    member_id: MemberId
    kind: str  # umb | linked-coverage | linked-subscriber | reviewed-request | merged-into
    system: str
    value: str
    assigner: str | None
    decision_id: str | None
    recorded_by: str
    valid_from: datetime
    valid_to: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "member": self.member_id,
            "kind": self.kind,
            "system": self.system,
            "value": self.value,
            "assigner": self.assigner,
            "decision": self.decision_id,
            "recorded_by": self.recorded_by,
            "valid_from": self.valid_from,
            "valid_to": self.valid_to,
        }


@dataclass(frozen=True)
class ShowCase:
    """``viewer`` asks to see review case ``review_id`` (its demographics) at ``at``."""

    review_id: str
    viewer: str
    at: datetime
    request_id: str | None


@dataclass(frozen=True)
class ReviewDecision:
    """A reviewer's decision on the version of a case they read."""

    review_id: str
    version: int
    accept: bool
    member_id: MemberId | None  # accepting names one of the case's candidates
    reviewer: str
    reason: str


@dataclass(frozen=True, slots=True)
class ReviewPriority:
    """Where a case stands in the queue: its risk and when it is due."""

    risk: float
    due_at: datetime


@dataclass(frozen=True, slots=True)
class ReviewOpening:
    """A case to open with a ``review`` decision: its id, the request as matching read it
    (what the reviewer compares with each candidate: demographics, kept for reviewers
    only), the decision's policy and the case's place in the queue."""

    id: str
    request: StandardRecord
    policy: str  # the policy's name: single_exchange, bulk
    priority: ReviewPriority


@dataclass(frozen=True, slots=True, order=True)
class QueuePosition:
    """A case's place in the queue's order; a page starts after one."""

    due_at: datetime
    id: str


@dataclass(frozen=True, slots=True)
class ReviewQuery:
    """One page of the queue: its filters, where it starts and how long it is."""

    status: str | None = "open"  # None: every case
    policy: str | None = None
    reason: str | None = None  # one of the reasons the case was opened for
    opened_before: datetime | None = None  # the age filter: opened at or before this
    after: QueuePosition | None = None
    limit: int = 50
