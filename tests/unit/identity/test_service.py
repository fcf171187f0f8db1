"""The identity use cases on the in-memory ports (tests/fakes.py): answer a $member-match,
and decide a review case so the same request is answered with the member next time."""

from __future__ import annotations

import functools
import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from payerbridge.audit.model import AuditEvent
from payerbridge.consent.model import Requester
from payerbridge.errors import (
    Conflict,
    ConsentDenied,
    MatchError,
    MatchUnderReview,
    NoMatch,
    TooManyAttempts,
)
from payerbridge.fhir.consent import parse_hrex_consent
from payerbridge.fhir.member_match import MemberMatchInput, parse_member_match_request
from payerbridge.identity.decision import SINGLE_EXCHANGE, MatchDecision
from payerbridge.identity.member_match import (
    MemberMatchAnswer,
    MemberMatchRules,
    answer_member_match,
)
from payerbridge.identity.service import (
    AttemptLimit,
    MatchedMember,
    decide_review,
    decision_audit_event,
    match_member,
)
from payerbridge.types import ClientId
from tests.builders import a_coverage, a_patient, an_exchange_request, member_match_parameters
from tests.fakes import (
    InMemoryConsentStore,
    InMemoryIdentityStore,
    InMemoryTransactions,
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


def _match(store: InMemoryIdentityStore, request: MemberMatchInput) -> MatchedMember:
    ids = itertools.count(1)

    def answer(answer: MatchedMember | MatchError) -> list[AuditEvent]:
        outcome = "match" if isinstance(answer, MatchedMember) else type(answer).__name__
        return [AuditEvent(AT, "newplan", "member-match", "Patient", "-", outcome)]

    return match_member(
        request,
        store,
        InMemoryTransactions(store.audit, store),
        client_id="newplan",
        requester_npi="1234567893",
        policy=SINGLE_EXCHANGE,
        attempts=LIMIT,
        at=AT,
        new_id=lambda: f"id-{next(ids)}-{len(store.decisions)}",
        umb_system="https://old.example/fhir/NamingSystem/umb",
        audit=lambda d: decision_audit_event(d, actor="newplan", request_id=None),
        answer_audit=answer,
    )


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
        store,
        InMemoryTransactions(store.audit, store),
        review_id,
        accept=True,
        member_id="p1",
        reviewer="ops",
        reason="called the member",
        at=AT,
        request_id=None,
    )

    assert case.status == "accepted"
    assert _match(store, request).member_id == "p1"
    assert "identity.review" in [e.action for e in store.audit.events]


def test_a_case_is_decided_once_and_a_second_decision_changes_nothing() -> None:
    store = _store()
    with pytest.raises(MatchUnderReview) as under_review:
        _match(store, _other_card(1))
    review_id = under_review.value.review_id
    assert review_id is not None
    transactions = InMemoryTransactions(store.audit, store)
    decide = functools.partial(
        decide_review, store, transactions, review_id, reason="checked", at=AT, request_id=None
    )
    decide(accept=False, member_id=None, reviewer="ops")
    kept = (list(store.links), list(store.audit.events), store.reviews[review_id])

    with pytest.raises(Conflict, match="already decided"):
        decide(accept=True, member_id="p1", reviewer="someone else")

    assert (store.links, store.audit.events, store.reviews[review_id]) == kept
    assert store.reviews[review_id].status == "rejected" and transactions.rollbacks == 1


def _answer(
    store: InMemoryIdentityStore, consents: InMemoryConsentStore, **consent: str
) -> MemberMatchAnswer:
    requester = Requester(client_id=ClientId("newplan"), npi="1234567893")
    body = member_match_parameters(an_exchange_request(), **consent)
    request = parse_member_match_request(body)
    assert request.consent is not None
    presented = parse_hrex_consent(
        request.consent, our_npi="1245319599", requester=requester, zone=ZoneInfo("UTC")
    )
    return answer_member_match(
        request,
        presented,
        index=store,
        transactions=InMemoryTransactions(store.audit, store, consents),
        consents=consents,
        members=_Members(),
        requester=requester,
        rules=MemberMatchRules(SINGLE_EXCHANGE, LIMIT, source_npi="1245319599"),
        at=lambda: AT,
        new_id=lambda: f"id-{len(store.decisions)}-{len(consents.consents)}",
        umb_system="https://old.example/fhir/NamingSystem/umb",
        request_id="r1",
        idempotency_key="k1",
    )


class _Members:
    def resource_types(self, patient_id: str) -> set[str]:
        return {"Patient", "Coverage"}


def test_a_presented_consent_that_permits_is_kept_and_one_that_does_not_refuses_the_match() -> None:
    store, consents = _store(), InMemoryConsentStore()
    answer = _answer(store, consents)
    assert answer.refusal is None and answer.matched is not None
    assert [c.role.value for c in consents.consents.values()] == ["disclose"]
    assert [e.action for e in answer.events] == ["member-match", "consent.decision"]

    expired = _answer(store, consents, start="2020-01-01", end="2021-01-01")
    assert isinstance(expired.refusal, ConsentDenied) and expired.matched is None
    assert expired.events[-1].outcome == "deny" and len(consents.consents) == 1
