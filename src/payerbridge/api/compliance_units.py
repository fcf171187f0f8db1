"""The compliance room's unit (ADR 0051) as a route's dependency: one per request,
built from the platform's units (``platform.units.compliance()``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from payerbridge.api.deps import PlatformDep
from payerbridge.compliance.unit import ComplianceUnit

__all__ = ["ComplianceUnitDep", "compliance_unit"]


async def compliance_unit(platform: PlatformDep) -> ComplianceUnit:
    """A fresh unit (cheap: no I/O, so not worth a thread)."""
    return platform.units.compliance()


ComplianceUnitDep = Annotated[ComplianceUnit, Depends(compliance_unit)]
