"""The bulk room's unit of work (ADR 0051): ``$bulk-member-match`` jobs, their Groups and
the exports. A use case is ``use_case(command, uow)``: each ``with uow:`` is one
transaction (a job's run commits once per chunk), and the stores write in ``uow`` itself,
a ``UnitOfWork`` while one is in progress; outside, they read the last commit.

What a use case makes before its transaction begins (a job's id, its members'
decisions, its Groups) takes its time from ``clock`` and its ids from ``mint_id``:
``now`` and ``new_id()`` are the transaction's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from payerbridge.audit.refusals import DEFAULT_WINDOW, RefusalCounts
from payerbridge.bulk.ports import BulkJobs, BulkMembers
from payerbridge.compliance.clocks import Clocks
from payerbridge.consent.ports import ConsentStore
from payerbridge.consent.segmentation import SegmentationPolicy
from payerbridge.disclosure.scope import PAYER_TO_PAYER, PROVIDER_ACCESS, DataScope
from payerbridge.identity.guard import AttemptLimit
from payerbridge.identity.matching.decision import MatchPolicy
from payerbridge.identity.ports import IdentityStore
from payerbridge.provider_access.decisions import ProviderAccessReads
from payerbridge.routing.model import Organization
from payerbridge.transactions import RoomUnit, Transactions, UnitOfWork

__all__ = ["BulkRules", "BulkUnit"]


@dataclass(frozen=True)
class BulkRules:
    policy: MatchPolicy  # the bulk thresholds
    us: Organization  # the Groups' managing entity; our NPI is the discloser consents name
    consent_zone: ZoneInfo  # where date-only consent periods are read
    output_lifetime: timedelta  # how long a completed job's files stay
    group_lifetime: timedelta  # how long its Groups stay readable and exportable
    chunk_members: int  # members per unit of work
    segmentation: SegmentationPolicy  # what a regular consent withholds
    payer_to_payer_years: int  # the service-date window an export gives
    attempts: AttemptLimit  # the card guard (HRex mm-7), shared with $member-match
    refusal_window: timedelta = DEFAULT_WINDOW  # members refused, counted per window
    scope: DataScope = PAYER_TO_PAYER  # what the rule lets an export carry at all
    provider_scope: DataScope = PROVIDER_ACCESS  # what a provider's export carries (ADR 0059)


@dataclass
class BulkUnit(RoomUnit):
    transactions: Transactions
    jobs: BulkJobs  # the jobs, their cursors, outcomes, output lines and Groups
    identity: IdentityStore  # the index members are matched on, their decisions kept
    consents: ConsentStore  # the members' Consents, decided for a match or an export
    members: BulkMembers  # the plan's members' records, exported
    rules: BulkRules
    clock: Callable[[], datetime]  # the time now, outside a transaction too
    mint_id: Callable[[], str]  # a fresh id, outside a transaction too
    refusals: RefusalCounts[UnitOfWork] | None = None  # members refused, counted
    clocks: Clocks | None = None  # each job's one-business-day answer row (bulk.clocks)
    # Who may go to a provider (ADR 0059); None: Provider Access is not served here.
    provider_access: ProviderAccessReads | None = None
