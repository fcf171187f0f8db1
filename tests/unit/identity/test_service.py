"""The identity use cases on the in-memory ports (tests/fakes.py): answer a $member-match,
and decide a review case so the same request is answered with the member next time."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from payerbridge.audit.model import AuditEvent
from payerbridge.audit.refusals import Refusal, RefusalWindow
from payerbridge.consent.hrex import parse_hrex_consent
from payerbridge.consent.model import Requester
from payerbridge.errors import (
    Conflict,
    ConsentDenied,
    MatchError,
    MatchUnderReview,
    NoMatch,
    PayerBridgeError,
    TooManyAttempts,
    WrongCardGuess,
)
from payerbridge.fhir.member_match import MemberMatchInput, parse_member_match_request
from payerbridge.identity.matching.decision import SINGLE_EXCHANGE
from payerbridge.identity.matching.model import MatchDecision
from payerbridge.identity.member_match import (
    MemberMatchAnswer,
    MemberMatchCommand,
    MemberMatchPorts,
    MemberMatchRules,
    answer_member_match,
)
from payerbridge.identity.model import ReviewDecision
from payerbridge.identity.reviews import decide_review
from payerbridge.identity.service import (
    AttemptLimit,
    MatchedMember,
    match_member,
)
from payerbridge.types import ClientId, MemberId
from tests.builders import a_coverage, a_patient, an_exchange_request, member_match_parameters
from tests.fakes import (
    InMemoryConsentStore,
    InMemoryIdentityStore,
    InMemoryTransactions,
    identity_unit,
)

AT = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
LIMIT = AttemptLimit(cards=3, window=timedelta(hours=1))


def _store() -> InMemoryIdentityStore:
    store = InMemoryIdentityStore()
    store.add_member(a_patient("p1"), a_coverage("c1", patient="p1"))
    for n, (given, family) in enumerate([("Luis", "Ortiz"), ("Mia", "Chen"), ("Ola", "Berg")]):
        pid = f"other-{n}"
        store.add_member(
            a_patient(pid, given=given, family=family, birth_date=f"197{n}-05-0{n + 1}"),
            a_coverage(f"c-{pid}", patient=pid, member_id=f"M9{n}", subscriber_id=f"S9{n}"),
        )
    return store


def _request(**member: object) -> MemberMatchInput:
    return parse_member_match_request(member_match_parameters(an_exchange_request(**member)))


def _other_card(n: int) -> MemberMatchInput:
    """The member's demographics, her first name one letter off, and a card nobody holds:
    likely her, but a name typo with no identifier to confirm it is a reviewer's call."""
    request = _request(given=["Anna"])
    request.coverage_to_match["identifier"][0]["value"] = f"X{n}"
    request.coverage_to_match["subscriberId"] = f"Y{n}"
    return request


RULES = MemberMatchRules(
    SINGLE_EXCHANGE,
    LIMIT,
    source_npi="1245319599",
    umb_system="https://old.example/fhir/NamingSystem/umb",
)
REQUESTER = Requester(client_id=ClientId("newplan"), npi="1234567893")


@functools.cache
def _transactions(store: InMemoryIdentityStore) -> InMemoryTransactions:
    """One store's units (their ids numbered across the test's calls)."""
    return InMemoryTransactions(store.audit, store)


def _match(store: InMemoryIdentityStore, request: MemberMatchInput) -> MatchedMember:
    """``match_member`` in a unit of its own; a refusal, committed, then raised."""
    with _transactions(store).begin() as unit:
        answer = match_member(MemberMatchCommand(request, None, REQUESTER, RULES), unit, store)
    if isinstance(answer, PayerBridgeError):
        raise answer
    return answer


def test_a_match_hands_out_one_umb_and_records_the_decision_with_its_evidence() -> None:
    store = _store()
    matched = _match(store, _request())
    assert matched.member_id == "p1"
    again = _match(store, _request())
    assert (again.umb_system, again.umb_value) == (matched.umb_system, matched.umb_value)
    decision, client = store.decisions[matched.decision_id]
    assert isinstance(decision, MatchDecision) and client == "newplan"
    assert [e.action for e in store.audit.events] == ["identity.decision", "member-match"] * 2
    umb_links = [link for link in store.links if link.kind == "umb"]
    assert {link.value for link in umb_links} == {matched.umb_value}


def test_no_member_is_no_match_and_too_many_cards_are_refused() -> None:
    store = _store()
    stranger = _request(given=["Zed"], family="Quinn", birth_date="1999-09-09")
    stranger.coverage_to_match["identifier"][0]["value"] = "Z1"
    stranger.coverage_to_match["subscriberId"] = "Z2"
    with pytest.raises(NoMatch):
        _match(store, stranger)
    for n in range(LIMIT.cards):  # the same person's demographics with other cards
        with pytest.raises(MatchError) as answered:
            _match(store, _other_card(n))
        assert not isinstance(answered.value, TooManyAttempts)
    with pytest.raises(TooManyAttempts) as refused:
        _match(store, _other_card(LIMIT.cards))
    # All tried at AT: the wait is the whole window, until the oldest of them leaves it.
    assert refused.value.retry_after_seconds == 3600


def test_a_decided_review_answers_the_same_request_with_the_member() -> None:
    store = _store()
    request = _other_card(0)  # the member's demographics, a card we do not know
    with pytest.raises(MatchUnderReview) as under_review:
        _match(store, request)
    review_id = under_review.value.review_id
    assert review_id is not None and store.reviews[review_id].candidate_ids == ("p1",)
    with pytest.raises(MatchUnderReview):
        _match(store, request)  # still open

    case = decide_review(
        ReviewDecision(review_id, 1, True, MemberId("p1"), "ops", "called the member"),
        identity_unit(store, at=AT + timedelta(hours=2)),
        request_id=None,
    )

    assert case.status == "accepted"
    assert _match(store, request).member_id == "p1"
    (event,) = [e for e in store.audit.events if e.action == "identity.review"]
    assert event.detail["waited_seconds"] == 7200  # the queue's time to resolution


def test_a_case_is_decided_once_and_a_second_decision_changes_nothing() -> None:
    store = _store()
    with pytest.raises(MatchUnderReview) as under_review:
        _match(store, _other_card(1))
    review_id = under_review.value.review_id
    assert review_id is not None
    transactions = InMemoryTransactions(store.audit, store, clock=lambda: AT)

    def decide(accept: bool, member_id: str | None, reviewer: str) -> None:
        member = None if member_id is None else MemberId(member_id)
        choice = ReviewDecision(review_id, 1, accept, member, reviewer, "checked")
        decide_review(choice, identity_unit(store, transactions=transactions), request_id=None)

    decide(accept=False, member_id=None, reviewer="ops")
    kept = (list(store.links), list(store.audit.events), store.reviews[review_id])

    with pytest.raises(Conflict, match="already decided: rejected by ops at 20"):
        decide(accept=True, member_id="p1", reviewer="someone else")

    assert (store.links, store.audit.events, store.reviews[review_id]) == kept
    assert store.reviews[review_id].status == "rejected"


def _answer(
    store: InMemoryIdentityStore, consents: InMemoryConsentStore, **consent: str
) -> tuple[MemberMatchAnswer, list[AuditEvent]]:
    """The answer and the audit events its unit committed."""
    body = member_match_parameters(an_exchange_request(), **consent)
    request = parse_member_match_request(body)
    assert request.consent is not None
    presented = parse_hrex_consent(
        request.consent, our_npi="1245319599", requester=REQUESTER, zone=ZoneInfo("UTC")
    )
    command = MemberMatchCommand(request, presented, REQUESTER, RULES, "r1", "k1")
    ports = MemberMatchPorts(store, consents)
    before = len(store.audit.events)
    with InMemoryTransactions(store.audit, store, consents).begin() as unit:
        answer = answer_member_match(command, unit, ports)
    return answer, store.audit.events[before:]


def test_a_presented_consent_that_permits_is_kept_and_one_that_does_not_refuses_the_match() -> None:
    store, consents = _store(), InMemoryConsentStore()
    answer, events = _answer(store, consents)
    assert answer.refusal is None and answer.matched is not None
    assert [c.role.value for c in consents.consents.values()] == ["disclose"]
    assert [e.action for e in events] == [
        "identity.decision",
        "member-match",
        "consent.recorded",
        "consent.decision",
    ]
    keyed = [e.detail["idempotency_key"] for e in events if "idempotency_key" in e.detail]
    assert keyed == ["k1", "k1"]  # the answer's and the consent decision's

    expired, events = _answer(store, consents, start="2020-01-01", end="2021-01-01")
    assert isinstance(expired.refusal, ConsentDenied) and expired.matched is None
    assert events[-1].outcome == "deny" and len(consents.consents) == 1


def test_answers_commit_in_the_unit_given_a_throttled_one_with_its_attempt_only() -> None:
    """One client tries the member's demographics with one card after another: the first
    goes to a reviewer, the others are guesses (no case, answered as no match) until the
    card guard answers 429; each refusal is counted, none chained one by one."""
    store, consents = _store(), InMemoryConsentStore()
    transactions = InMemoryTransactions(store.audit, store, consents)
    counted = CountedRefusals()
    ports = MemberMatchPorts(store, consents, refusals=counted)
    answers = []
    for n in range(LIMIT.cards + 1):
        command = MemberMatchCommand(_other_card(n), None, REQUESTER, RULES, "r1")
        with transactions.begin() as unit:
            answers.append(answer_member_match(command, unit, ports))
    assert isinstance(answers[0].refusal, MatchUnderReview)
    guesses = [a.refusal for a in answers[1:-1]]
    assert all(isinstance(g, WrongCardGuess) and g.reason_code == "no-match" for g in guesses)
    throttled = answers[-1]
    assert isinstance(throttled.throttled, TooManyAttempts) and throttled.refusal is None
    assert (transactions.commits, transactions.rollbacks) == (LIMIT.cards + 1, 0)
    assert len(store.attempts) == LIMIT.cards + 1  # the last attempt counted too
    # the first card's decision, case and answer; nothing of a guess or the throttled one
    assert len(store.reviews) == 1 and len(store.audit.events) == 2
    assert [r.reason for r in counted.refusals] == [
        "match-under-review",
        *["card-guard"] * (LIMIT.cards - 1),
        "too-many-attempts",
    ]
    assert {(r.client_id, r.operation) for r in counted.refusals} == {
        (REQUESTER.client_id, "member-match")
    }


def test_another_clients_first_card_still_goes_to_a_reviewer() -> None:
    """The guard is the client's: a second client asking with its own card opens a case."""
    store = _store()
    with pytest.raises(MatchUnderReview):
        _match(store, _other_card(0))
    with pytest.raises(WrongCardGuess):
        _match(store, _other_card(1))
    other = Requester(client_id=ClientId("other-plan"), npi="1679576722")
    with _transactions(store).begin() as unit:
        answer = match_member(MemberMatchCommand(_other_card(2), None, other, RULES), unit, store)
    assert isinstance(answer, MatchUnderReview) and answer.review_id is not None
    assert len(store.reviews) == 2


class CountedRefusals:
    """``RefusalCounts`` that keeps what it was given (the windows are the store's)."""

    def __init__(self) -> None:
        self.refusals: list[Refusal] = []

    def count(self, unit: object, refusals: Sequence[Refusal], *, length: timedelta) -> None:
        self.refusals.extend(refusals)

    def take_ended(self, unit: object, *, now: datetime, limit: int) -> list[RefusalWindow]:
        return []
