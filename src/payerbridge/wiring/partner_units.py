"""The units (ADR 0051) of the partner directory, of what operators read about partners,
of the compliance room and of Provider Access, wired once: ``Units`` hands out a copy of
each per use case (``platform.units.partners()``, ``partner_health()``, ``compliance()``,
``provider_access()``)."""

from __future__ import annotations

from typing import TypedDict

from payerbridge.clock import utcnow
from payerbridge.compliance.obligations import ObligationSet
from payerbridge.compliance.unit import ComplianceUnit
from payerbridge.config import Settings
from payerbridge.oversight.health_unit import PartnerHealthUnit
from payerbridge.oversight.ports import Oversight
from payerbridge.provider_access.unit import ProviderAccessUnit
from payerbridge.routing.model import Organization
from payerbridge.routing.ports import PartnerDiscovery
from payerbridge.routing.unit import DirectoryUnit, PartnersUnit
from payerbridge.store.obligation_clocks import SqlObligationClocks
from payerbridge.store.partner_health import SqlPartnerCalls
from payerbridge.store.partner_proposals import SqlPartnerProposals
from payerbridge.store.provider_access import SqlAttributions, SqlOptOuts, SqlServiceRecords
from payerbridge.wiring.ports import lifecycle_ports
from payerbridge.wiring.stores import Stores

__all__ = ["PartnerUnits", "partner_units"]


class PartnerUnits(TypedDict):
    """``Units``' fields for these rooms, by name."""

    partners_unit: PartnersUnit
    partner_health_unit: PartnerHealthUnit
    compliance_unit: ComplianceUnit
    provider_access_unit: ProviderAccessUnit
    directory_unit: DirectoryUnit


def partner_units(
    settings: Settings,
    stores: Stores,
    discovery: PartnerDiscovery,
    obligations: ObligationSet,
    oversight: Oversight,
) -> PartnerUnits:
    """The five units, on the directory, the discovery, the obligations and the
    oversight reads bootstrap built once."""
    engine, reader, transactions = stores.engine, stores.reader, stores.transactions
    return PartnerUnits(
        partners_unit=PartnersUnit(transactions, stores.partners, discovery),
        partner_health_unit=PartnerHealthUnit(
            transactions,
            stores.partners,
            stores.breakers,
            SqlPartnerCalls(engine, reader=reader),
            stores.exchanges,
            oversight,
            utcnow,
        ),
        compliance_unit=ComplianceUnit(
            transactions=transactions,
            obligations=obligations,
            clock_reader=SqlObligationClocks(reader, obligations=obligations),
            **lifecycle_ports(settings, stores),
        ),
        provider_access_unit=ProviderAccessUnit(
            transactions,
            SqlAttributions(engine, reader=reader),
            SqlOptOuts(engine, reader=reader),
            SqlServiceRecords(engine, reader=reader),
            Organization(settings.org_name, settings.org_npi),
            utcnow,
            obligations.calendar,
        ),
        directory_unit=DirectoryUnit(
            transactions,
            stores.partners,
            discovery,
            SqlPartnerProposals(engine, reader=reader),
        ),
    )
