"""The partner units (ADR 0051) as a route's dependencies, one per request, built from
the platform's units: the directory's (``platform.units.partners()``) and what
operators read about partners (``platform.units.partner_health()``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from payerbridge.api.deps import PlatformDep
from payerbridge.oversight.health_unit import PartnerHealthUnit
from payerbridge.routing.unit import PartnersUnit

__all__ = ["PartnerHealthUnitDep", "PartnersUnitDep", "partner_health_unit", "partners_unit"]


async def partners_unit(platform: PlatformDep) -> PartnersUnit:
    """A fresh unit (cheap: no I/O, so not worth a thread)."""
    return platform.units.partners()


async def partner_health_unit(platform: PlatformDep) -> PartnerHealthUnit:
    return platform.units.partner_health()


PartnersUnitDep = Annotated[PartnersUnit, Depends(partners_unit)]
PartnerHealthUnitDep = Annotated[PartnerHealthUnit, Depends(partner_health_unit)]
