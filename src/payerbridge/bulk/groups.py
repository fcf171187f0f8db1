"""The result Groups of ``$bulk-member-match`` as their client reads and searches them
(PDex): each is its client's own, until it expires; another client's, or an expired one,
does not exist (404).

A search names the requester's NPI (``identifier`` or
``characteristic-value-reference:identifier``) and the match result (``code`` or
``characteristic``, a PdexMultiMemberMatchResultCS code). Values separated by commas are
alternatives; a parameter given twice must hold both ways (PDex: multipleOr and
multipleAnd). Any other parameter is refused, not ignored."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from payerbridge.bulk.access import require_whole_client
from payerbridge.bulk.ports import StoredGroup
from payerbridge.bulk.unit import BulkUnit
from payerbridge.errors import InvalidInput, Issue, NotFound
from payerbridge.fhir import codes
from payerbridge.fhir.bulk_member_match import RESULT_SYSTEM, MatchResult
from payerbridge.fhir.resources import ID_PATTERN
from payerbridge.security.model import Principal, require_scope, resource_scope

__all__ = ["GroupFilter", "GroupRead", "GroupSearch", "group_filter", "read_group", "search_groups"]

NPI_PARAMETERS = ("identifier", "characteristic-value-reference:identifier")
RESULT_PARAMETERS = ("code", "characteristic")


@dataclass(frozen=True)
class GroupRead:
    """A Group the caller names by its id (as its path gave it)."""

    principal: Principal
    group_id: str


@dataclass(frozen=True)
class GroupSearch:
    """The caller's search: its parameters as (name, value) pairs, in the order given."""

    principal: Principal
    parameters: Sequence[tuple[str, str]]


def read_group(command: GroupRead, uow: BulkUnit) -> StoredGroup:
    """A result Group of the caller's own ``$bulk-member-match``, while it lasts."""
    require_whole_client(command.principal)
    require_scope(command.principal, resource_scope("Group", "r"))
    group_id = command.group_id
    group = uow.jobs.group(group_id) if ID_PATTERN.match(group_id) else None
    if (
        group is None
        or group.client_id != command.principal.client_id
        or group.expires_at <= uow.clock()
    ):
        raise NotFound(f"Group/{group_id[:64]} does not exist")
    return group


@dataclass(frozen=True)
class GroupFilter:
    """What a Group search selects: the requester NPIs and match results it allows
    (None: any)."""

    npis: frozenset[str] | None
    results: frozenset[str] | None

    def admits(self, npi: str, result: str) -> bool:
        return (self.npis is None or npi in self.npis) and (
            self.results is None or result in self.results
        )


def search_groups(command: GroupSearch, uow: BulkUnit) -> list[StoredGroup]:
    """The caller's unexpired result Groups that the search's parameters select."""
    selected = group_filter(command)
    return uow.jobs.find_groups(
        command.principal.client_id,
        requester_npis=selected.npis,
        results=selected.results,
        now=uow.clock(),
    )


def group_filter(command: GroupSearch) -> GroupFilter:
    """The search's parameters read (400 naming one not supported); the caller may
    search Groups."""
    require_whole_client(command.principal)
    require_scope(command.principal, resource_scope("Group", "s"))
    npis: set[str] | None = None
    results: set[str] | None = None
    for name, value in command.parameters:
        if name in NPI_PARAMETERS:
            npis = _and(npis, {_token(v, codes.NPI_SYSTEM, name) for v in value.split(",")})
        elif name in RESULT_PARAMETERS:
            results = _and(results, _results(name, value))
        else:
            supported = ", ".join((*NPI_PARAMETERS, *RESULT_PARAMETERS))
            text = f"Group search parameter '{name[:60]}' is not supported; use {supported}"
            raise InvalidInput(text, issues=[Issue(text, name[:60], "not-supported")])
    return GroupFilter(
        None if npis is None else frozenset(npis),
        None if results is None else frozenset(results),
    )


def _results(name: str, value: str) -> set[str]:
    """The match results one ``code`` or ``characteristic`` value allows."""
    asked = {_token(v, RESULT_SYSTEM, name) for v in value.split(",")}
    unknown = asked - {bucket.value for bucket in MatchResult}
    if unknown:
        text = f"'{sorted(unknown)[0][:40]}' is not a PdexMultiMemberMatchResultCS code"
        raise InvalidInput(text, issues=[Issue(text, name, "code-invalid")])
    return asked


def _and(before: set[str] | None, alternatives: set[str]) -> set[str]:
    """A parameter given again: what both allow (multipleAnd)."""
    return alternatives if before is None else before & alternatives


def _token(value: str, system: str, parameter: str) -> str:
    """A token's code, when its system (if given) is ``system``."""
    given_system, bar, code = value.strip().rpartition("|")
    if (bar and given_system and given_system != system) or not code:
        text = f"{parameter} takes {system}|code or a bare code"
        raise InvalidInput(text, issues=[Issue(text, parameter, "invalid")])
    return code
