"""Reads and searches of a member's data by a partner: each decided by the member's consent
for the caller at the moment of release, and segmented by the policy it permits."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from payerbridge.audit.ports import AuditLog
from payerbridge.consent.labels import labelled
from payerbridge.consent.model import (
    ConsentPolicy,
    DisclosureRequest,
    Requester,
    is_own_organization,
)
from payerbridge.consent.ports import ConsentStore
from payerbridge.consent.segmentation import (
    DEFAULT_SEGMENTATION,
    SegmentationPolicy,
    references_at,
    sensitive_categories_of,
    supported_policies,
)
from payerbridge.consent.service import authorize_disclosure
from payerbridge.disclosure.ports import MemberData
from payerbridge.disclosure.release import Release, release
from payerbridge.disclosure.scope import PAYER_TO_PAYER, WHOLE_RECORD, DataScope, ReleaseScope
from payerbridge.disclosure.search import PatientQuery
from payerbridge.errors import DisclosureDenied, NotFound
from payerbridge.types import MemberId

Resource = dict[str, Any]

__all__ = [
    "DisclosureContext",
    "authorize_member",
    "find_patients",
    "member_permits",
    "read_resource",
]


@dataclass(frozen=True)
class DisclosureContext:
    """Who asks, when, from which payer (us), and the ports every release goes through."""

    members: MemberData
    consents: ConsentStore
    audit: AuditLog
    requester: Requester
    source_npi: str
    at: datetime
    request_id: str | None
    # A member-scoped token reads this member only; others read as absent.
    only_member: MemberId | None = None
    segmentation: SegmentationPolicy = DEFAULT_SEGMENTATION
    scope: DataScope = PAYER_TO_PAYER  # what the rule lets leave at all

    @property
    def own(self) -> bool:
        """The plan's own organization reads its own records (ADR 0052): no consent, the
        whole record, labelled."""
        return is_own_organization(self.requester, self.source_npi)

    @property
    def release_scope(self) -> ReleaseScope:
        return WHOLE_RECORD if self.own else self.scope


def authorize_member(context: DisclosureContext, patient_id: MemberId, hop: str) -> ConsentPolicy:
    """The data holder's consent check for one member: the decision is audited; a denial
    raises DisclosureDenied (403 with the reason), a permit gives the policy to segment by.
    Another member than a member-scoped token's is not found."""
    if context.only_member is not None and patient_id != context.only_member:
        raise NotFound(f"Patient/{patient_id[:64]} does not exist")
    disclosure = authorize_disclosure(
        context.consents,
        DisclosureRequest(
            member_id=MemberId(patient_id),
            requester=context.requester,
            at=context.at,
            source_npi=context.source_npi,
            supported_policies=supported_policies(
                context.members.resource_types(patient_id), context.segmentation
            ),
            hop=hop,
            request_id=context.request_id,
            code_sets=context.segmentation.code_sets.label,
            scope=context.release_scope.label,
        ),
    )
    context.audit.record(disclosure.event)
    return disclosure.require(data_access=True)


def read_resource(
    context: DisclosureContext, resource_type: str, resource_id: str
) -> dict[str, Any]:
    """A member's resource needs that member's consent for the caller and is read as
    ``release`` lets it go with the rest of the compartment. Withheld, not permitted by
    a consent, another member's (to a member-scoped caller) and missing all read alike:
    404, naming only what was asked.

    A shared resource (Organization, Medication, ...) belongs to no member: a member-
    scoped caller reads only those its member's released records reach; any other
    caller reads those that say nothing sensitive by themselves, while a sensitive one
    (a 42 CFR Part 2 program, an antiretroviral) goes only with a member's records
    under a consent that lets it go. The plan's own organization reads every one,
    labelled (ADR 0052)."""
    members = context.members
    absent = NotFound(f"{resource_type}/{resource_id} does not exist")
    owner = members.owner_of(resource_type, resource_id)
    key = f"{resource_type}/{resource_id}"
    if owner is None:
        resource = _found(members.read(resource_type, resource_id), absent)
        if context.only_member is not None:
            policy = _permitted(context, context.only_member, absent)
            released = _release(context, members.compartment(context.only_member), policy)
            return _among(released.shared, key, absent)
        if resource_type == "Patient":
            raise absent  # a Patient without a compartment row is no member's to give
        sensitive = bool(sensitive_categories_of(resource, context.segmentation))
        if context.own:  # the plan's own: whole, labelled by what it says by itself
            return labelled(resource, sensitive=sensitive, segmentation=context.segmentation)
        if sensitive:
            raise absent
        if context.scope.excludes(resource) is not None:
            raise absent  # not for this purpose at all
        return context.scope.shaped(resource)[0]
    if context.only_member is not None and owner != context.only_member:
        raise absent  # another member's: absent, and its owner never named
    policy = _permitted(context, owner, absent)
    # Segmentation judges a resource with what it refers to, so it needs the compartment.
    released = _release(context, members.compartment(owner), policy)
    return _among(released.records, key, absent)


def _release(context: DisclosureContext, records: list[Resource], policy: ConsentPolicy) -> Release:
    return release(
        records,
        context.members,
        policy,
        context.segmentation,
        context.release_scope,
    )


def _permitted(context: DisclosureContext, member: MemberId, absent: NotFound) -> ConsentPolicy:
    """The member's consent for a read: a denial reads as absent (404, the body of a
    missing resource), so that a read never tells what exists without a consent; the
    decision is audited all the same."""
    try:
        return authorize_member(context, member, "read")
    except DisclosureDenied:
        raise absent from None


def _among(resources: list[dict[str, Any]], key: str, absent: NotFound) -> dict[str, Any]:
    for resource in resources:
        if f"{resource['resourceType']}/{resource['id']}" == key:
            return resource
    raise absent


def _found(resource: dict[str, Any] | None, absent: NotFound) -> dict[str, Any]:
    if resource is None:
        raise absent
    return resource


def find_patients(context: DisclosureContext, query: PatientQuery) -> list[tuple[str, Resource]]:
    """Patients by identifier (system, value: the UMB from $member-match) and/or id, as
    (search mode, resource); a member whose consent does not permit the caller is simply
    not found. With ``_revinclude=Provenance:target``, the stored Provenance of each
    Patient found, as the member's consent releases it."""
    members = context.members
    if query.identifier is not None:
        system, value = query.identifier
        refs = members.find_refs_by_token("Patient", "identifier", value, system)
    else:
        refs = [f"Patient/{query.resource_id}"]
    if query.resource_id is not None:
        refs = [r for r in refs if r == f"Patient/{query.resource_id}"]
    if context.only_member is not None:
        refs = [r for r in refs if r == f"Patient/{context.only_member}"]
    found: list[tuple[str, Resource]] = []
    for patient in members.read_many(refs):
        try:
            policy = authorize_member(context, patient["id"], "search")
        except DisclosureDenied:
            continue
        if not query.revinclude_provenance:
            # What a Patient may keep depends only on the shared resources it points at.
            kept = _release(context, [patient], policy).records
            found.extend(("match", r) for r in kept)
            continue
        key = f"Patient/{patient['id']}"
        released = _release(context, members.compartment(patient["id"]), policy)
        found.extend(("match", r) for r in released.records if r["resourceType"] == "Patient")
        found.extend(
            ("include", r)
            for r in released.records
            if r["resourceType"] == "Provenance" and key in references_at(r, ("target",))
        )
    return found


def member_permits(context: DisclosureContext, patient_id: MemberId) -> bool:
    """Whether the member's consent permits the caller data access now (audited, as
    every decision): asked before a member-scoped token is issued."""
    try:
        authorize_member(context, patient_id, "token")
    except (DisclosureDenied, NotFound):
        return False
    return True
