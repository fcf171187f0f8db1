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

from payerbridge.bulk.export import GroupExportAsked, accept_members
from payerbridge.bulk.model import BulkJob, JobKind
from payerbridge.bulk.provider_decision import provider_reads
from payerbridge.bulk.unit import BulkUnit
from payerbridge.errors import InvalidInput, Issue, NotFound
from payerbridge.fhir.codes import PROVIDER_DELTA_EXPORT, PROVIDER_DOWNLOAD_EXPORT
from payerbridge.provider_access.groups import provider_of

__all__ = ["accept_provider_export"]


def accept_provider_export(command: GroupExportAsked, uow: BulkUnit) -> BulkJob:
    """Record the export of the provider's own Group: only the organization whose proven
    NPI it is may ask (any other is told the Group does not exist)."""
    asked = command.asked
    request, requester = asked.request, asked.requester
    npi = provider_of(command.group_id)
    if npi is None or not requester.npi or requester.npi != npi:
        raise NotFound(f"Group/{command.group_id[:64]} does not exist")
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
    now = uow.clock()
    members = list(provider_reads(uow).decide(npi, now).members)
    if request.patients is not None:
        may, named = set(members), list(request.patients)
        strangers = [p for p in named if p not in may]
        if strangers:
            issues = [
                Issue(f"Patient/{p} is not in Group/{command.group_id}", "patient", "not-found")
                for p in strangers
            ]
            raise InvalidInput("patient names members the Group does not hold", issues=issues)
        members = [p for p in members if p in set(named)]
    return accept_members(uow, JobKind.PROVIDER_EXPORT, members, asked, now)
