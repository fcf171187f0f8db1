"""Reading and searching the result Groups (bulk/groups.py): only the caller's own and
unexpired, only by the parameters PDex names, with the texts the client is told."""

from __future__ import annotations

import dataclasses

import pytest

from payerbridge.bulk.groups import GroupRead, GroupSearch, read_group, search_groups
from payerbridge.errors import Forbidden, InvalidInput, NotFound
from payerbridge.fhir import codes
from payerbridge.fhir.bulk_member_match import RESULT_SYSTEM
from payerbridge.types import MemberId
from tests.unit.bulk.memory import NEW_NPI, OTHER_NPI, WHOLE, a_bulk

MEMBER_SCOPED = dataclasses.replace(WHOLE, patient=MemberId("m1"))


def test_a_group_of_the_callers_own_is_read() -> None:
    bulk = a_bulk()
    assert read_group(GroupRead(WHOLE, "matched"), bulk.uow).id == "matched"


@pytest.mark.parametrize("group_id", ["theirs", "missing", "not an id!"])
def test_another_clients_missing_or_malformed_group_does_not_exist(group_id: str) -> None:
    with pytest.raises(NotFound, match=r"Group/.* does not exist"):
        read_group(GroupRead(WHOLE, group_id), a_bulk().uow)


def test_an_expired_group_does_not_exist() -> None:
    bulk = a_bulk()
    bulk.clock.advance(2 * 86400)
    with pytest.raises(NotFound):
        read_group(GroupRead(WHOLE, "matched"), bulk.uow)


def test_a_member_scoped_token_reads_no_group() -> None:
    with pytest.raises(Forbidden, match="member-scoped token"):
        read_group(GroupRead(MEMBER_SCOPED, "matched"), a_bulk().uow)
    with pytest.raises(Forbidden, match="member-scoped token"):
        search_groups(GroupSearch(MEMBER_SCOPED, []), a_bulk().uow)


def test_a_token_without_group_scopes_is_refused() -> None:
    token = dataclasses.replace(WHOLE, scopes=frozenset({"system/Patient.rs"}))
    with pytest.raises(Forbidden, match="lacks the scope"):
        read_group(GroupRead(token, "matched"), a_bulk().uow)


def ids(parameters: list[tuple[str, str]]) -> set[str]:
    return {g.id for g in search_groups(GroupSearch(WHOLE, parameters), a_bulk().uow)}


def test_no_parameter_finds_every_group_of_the_callers() -> None:
    assert ids([]) == {"matched", "nonmatched", "other-npi"}


def test_the_requester_npi_and_result_select() -> None:
    assert ids([("identifier", f"{codes.NPI_SYSTEM}|{NEW_NPI}")]) == {"matched", "nonmatched"}
    assert ids([("characteristic-value-reference:identifier", OTHER_NPI)]) == {"other-npi"}
    assert ids([("code", f"{RESULT_SYSTEM}|match")]) == {"matched", "other-npi"}
    assert ids([("code", "match"), ("identifier", NEW_NPI)]) == {"matched"}


def test_commas_are_alternatives_and_a_repeated_parameter_must_hold_both_ways() -> None:
    assert ids([("characteristic", "match,nomatch")]) == {"matched", "nonmatched", "other-npi"}
    assert ids([("code", "match,nomatch"), ("code", "nomatch")]) == {"nonmatched"}
    assert ids([("identifier", NEW_NPI), ("identifier", OTHER_NPI)]) == set()


def test_an_unknown_result_code_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        ids([("code", "maybe")])
    assert refused.value.text == "'maybe' is not a PdexMultiMemberMatchResultCS code"
    assert refused.value.issues[0].code == "code-invalid"


def test_a_token_of_another_system_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        ids([("identifier", f"http://example.org|{NEW_NPI}")])
    assert refused.value.text == f"identifier takes {codes.NPI_SYSTEM}|code or a bare code"
    with pytest.raises(InvalidInput):
        ids([("code", f"{RESULT_SYSTEM}|")])


def test_an_unsupported_parameter_is_refused_naming_those_supported() -> None:
    with pytest.raises(InvalidInput) as refused:
        ids([("_id", "matched")])
    assert refused.value.text == (
        "Group search parameter '_id' is not supported; use identifier, "
        "characteristic-value-reference:identifier, code, characteristic"
    )
    assert refused.value.issues[0].code == "not-supported"
