"""Review cases on the in-memory ports: decided once, changed only on the version read,
reopened, and shown to their reviewer side by side, audited."""

from __future__ import annotations

import pytest

from payerbridge.errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from payerbridge.identity.model import LinkKind, ReviewDecision, ShowCase
from payerbridge.identity.reviews import (
    ReviewReopening,
    decide_review,
    refusal_for,
    reopen_review,
    show_case,
)
from payerbridge.types import MemberId
from tests.fakes import InMemoryIdentityStore, identity_unit
from tests.unit.identity.test_service import AT, _match, _other_card, _store


def _open_case(store: InMemoryIdentityStore, n: int = 0) -> str:
    """A case the engine opens for the member with her name a letter off."""
    with pytest.raises(Exception) as under_review:
        _match(store, _other_card(n))
    review_id: str | None = getattr(under_review.value, "review_id", None)
    assert review_id is not None
    return review_id


def _decide(
    store: InMemoryIdentityStore,
    review_id: str,
    version: int,
    *,
    accept: bool = True,
    member: str | None = "p1",
    reviewer: str = "ops:r.lee",
) -> None:
    decide_review(
        ReviewDecision(
            review_id,
            version,
            accept,
            None if member is None else MemberId(member),
            reviewer,
            "confirmed by phone",
        ),
        identity_unit(store, at=AT),
        request_id="req-1",
    )


def test_a_decision_is_audited_with_the_reviewer_as_actor_and_moves_the_version() -> None:
    store = _store()
    review_id = _open_case(store)
    assert store.reviews[review_id].version == 1

    _decide(store, review_id, 1)

    case = store.reviews[review_id]
    assert (case.status, case.member_id, case.version) == ("accepted", "p1", 2)
    (event,) = [e for e in store.audit.events if e.action == "identity.review"]
    assert (event.actor, event.entity_id, event.outcome) == ("ops:r.lee", review_id, "accepted")
    assert event.detail == {
        "decision": case.decision_id,
        "member": "p1",
        "version": 2,
        "waited_seconds": 0.0,
    }


def test_a_second_decision_is_refused_naming_who_decided_and_when() -> None:
    store = _store()
    review_id = _open_case(store)
    _decide(store, review_id, 1, reviewer="ops:first")
    kept = (store.reviews[review_id], list(store.links), list(store.audit.events))

    for version in (1, 2):  # a page read before the decision, or after it
        with pytest.raises(Conflict) as refused:
            _decide(store, review_id, version, accept=False, member=None, reviewer="ops:second")
        assert refused.value.text == (
            f"review case {review_id} was already decided: accepted by ops:first at "
            "2026-11-22T09:00:00Z"
        )
    assert (store.reviews[review_id], store.links, store.audit.events) == kept


def test_a_page_read_before_a_reopening_cannot_decide_the_case_again() -> None:
    store = _store()
    review_id = _open_case(store)
    stale = store.reviews[review_id].version  # a second reviewer's page, left open
    _decide(store, review_id, 1)
    link = (LinkKind.REVIEWED_REQUEST, "p1")
    assert [(k.kind, k.member_id) for k in store.links if k.valid_to is None].count(link) == 1

    with pytest.raises(PreconditionFailed):  # reopening a decision its page never showed
        reopen(store, review_id, version=1)
    reopened = reopen(store, review_id, version=2)

    assert (reopened.status, reopened.member_id, reopened.version) == ("open", None, 3)
    # The request is no longer answered with the member: its link ended.
    assert link not in [(k.kind, k.member_id) for k in store.links if k.valid_to is None]
    with pytest.raises(PreconditionFailed, match="changed after version 1 was read"):
        _decide(store, review_id, stale, accept=False, member=None)
    _decide(store, review_id, 3, accept=False, member=None)
    assert store.reviews[review_id].status == "rejected"
    actions = [e.action for e in store.audit.events if e.entity_type == "IdentityReview"]
    assert actions == ["identity.review", "identity.review.reopen", "identity.review"]
    store.attempts.clear()  # the card guard's window has passed: another card is no guess
    with pytest.raises(Conflict, match="is open"):
        reopen(store, _open_case(store, 1), version=1)


def reopen(store: InMemoryIdentityStore, review_id: str, *, version: int):  # type: ignore[no-untyped-def]
    return reopen_review(
        ReviewReopening(review_id, version, "ops:lead", "accepted the wrong person"),
        identity_unit(store, at=AT),
        request_id=None,
    )


def test_a_choice_outside_the_case_is_refused_before_anything_is_written() -> None:
    store = _store()
    review_id = _open_case(store)
    with pytest.raises(InvalidInput) as refused:
        _decide(store, review_id, 1, member="other-0")
    assert refused.value.issues[0].expression == "member"
    with pytest.raises(InvalidInput, match="names no member"):
        _decide(store, review_id, 1, accept=False, member="p1")
    with pytest.raises(InvalidInput):
        _decide(store, review_id, 1, member=None)
    with pytest.raises(NotFound):
        _decide(store, "no-such-case", 1)
    assert store.reviews[review_id].status == "open" and store.reviews[review_id].version == 1
    assert refusal_for(store.reviews[review_id], review_id, 1) is None


def test_the_case_is_shown_side_by_side_and_the_showing_audited() -> None:
    store = _store()
    review_id = _open_case(store)
    before = len(store.audit.events)

    shown = show_case(
        store, store.audit, ShowCase(review_id, viewer="ops", at=AT, request_id="r-9")
    )

    view = shown.view.to_dict()
    (candidate,) = [c for c in view["candidates"] if c["proposed"]]  # type: ignore[union-attr]
    fields = {f["comparison"]: f for f in candidate["fields"]}
    assert (fields["given_name"]["request"], fields["given_name"]["candidate"]) == ("anna", "ana")
    assert fields["given_name"]["level"] != "exact"
    assert fields["birth_date"]["request"] == fields["birth_date"]["candidate"] == "1980-02-03"
    assert fields["member_id"]["request"] == "X0" and fields["member_id"]["candidate"] == "M123"
    assert candidate["member"] == "p1" and candidate["on_file"] is True
    weights = [f["match_weight"] for f in candidate["fields"]]
    assert candidate["match_weight"] != 0 and any(w < 0 for w in weights)
    assert view["bands"] == {
        "policy": "single_exchange",
        "review": 0.0,
        "auto": 13.288,
        "margin": 10.0,
    }
    assert view["request"]["family_name"] == "garcia"  # type: ignore[index]
    (event,) = store.audit.events[before:]
    assert (event.action, event.actor, event.entity_id) == (
        "identity.review.view",
        "ops",
        review_id,
    )
    assert "anna" not in str(event) and "garcia" not in str(event)
