"""A provider's export (Provider Access, ADR 0059): ``Group/provider-<NPI>/$davinci-data-
export`` by the provider's own organization, with PDex 2.2's ``provider-download`` or
``provider-delta`` (what changed since ``_since``).

The job's members are those who may go when it is kicked off; each is decided again
when the job reaches her, as a consent is for payer-to-payer: attributed to the provider
that day and not opted out then, or skipped and named in the error file. What goes is
the ``provider-access`` scope's, from 2016-01-01 (prior authorizations changed within
the year), under the ``regular`` policy: sensitive records need a consent this API does
not carry, so they never go to a provider from here.
"""

from __future__ import annotations

from datetime import datetime

from payerbridge.bulk.export import GroupExportAsked, accept_members, members_named
from payerbridge.bulk.model import BulkJob, JobKind
from payerbridge.bulk.ports import StoredGroup
from payerbridge.bulk.provider_decision import provider_reads
from payerbridge.bulk.unit import BulkUnit
from payerbridge.errors import InvalidInput, Issue, NotFound
from payerbridge.fhir.codes import PROVIDER_DELTA_EXPORT, PROVIDER_DOWNLOAD_EXPORT
from payerbridge.provider_access.groups import provider_of

__all__ = ["accept_provider_export"]


def _provider_of(command: GroupExportAsked, matched: StoredGroup | None, now: datetime) -> str:
    """The provider whose Group it is: by its id, or the client's own MatchedMembers of
    ``$provider-member-match`` while it lasts. Any other asker is told it does not exist."""
    requester = command.asked.requester
    if matched is None:
        npi = provider_of(command.group_id)
    elif matched.client_id == requester.client_id and matched.expires_at > now:
        npi = matched.requester_npi
    else:
        npi = None
    if npi is None or not requester.npi or requester.npi != npi:
        raise NotFound(f"Group/{command.group_id[:64]} does not exist")
    return npi


def accept_provider_export(
    command: GroupExportAsked, uow: BulkUnit, *, matched: StoredGroup | None = None
) -> BulkJob:
    """Record the export of the provider's own Group (``matched``: a MatchedMembers
    Group of its ``$provider-member-match``, of which only those who may go now go)."""
    asked = command.asked
    request = asked.request
    now = uow.clock()
    npi = _provider_of(command, matched, now)
    offered = (PROVIDER_DOWNLOAD_EXPORT, PROVIDER_DELTA_EXPORT)
    if request.export_type not in offered:
        text = (
            f"a provider's Group exports {' or '.join(offered)}; "
            f"exportType '{request.export_type}' is another API's"
        )
        raise InvalidInput(text, issues=[Issue(text, "exportType", "not-supported")])
    if request.export_type == PROVIDER_DELTA_EXPORT and request.since is None:
        text = "provider-delta exports what changed since _since: give _since"
        raise InvalidInput(text, issues=[Issue(text, "_since", "required")])
    members = list(provider_reads(uow).decide(npi, now).members)
    if matched is not None:
        listed = {
            str(m["entity"]["reference"]).removeprefix("Patient/")
            for m in matched.body.get("member", [])
        }
        members = [m for m in members if m in listed]
    members = members_named(members, request.patients, command.group_id)
    return accept_members(uow, JobKind.PROVIDER_EXPORT, members, asked, now)
