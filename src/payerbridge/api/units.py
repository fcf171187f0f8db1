"""Each room's unit of work as a dependency (ADR 0051): a fresh one per request, built
from the platform's ``units``, so a handler takes the unit its use case takes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from payerbridge.api.deps import PlatformDep
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.identity.unit import IdentityUnit

__all__ = ["ExchangeUnitDep", "IdentityUnitDep"]


def identity_unit(platform: PlatformDep) -> IdentityUnit:
    return platform.units.identity()


def exchange_unit(platform: PlatformDep) -> ExchangeUnit:
    return platform.units.exchange()


IdentityUnitDep = Annotated[IdentityUnit, Depends(identity_unit)]
ExchangeUnitDep = Annotated[ExchangeUnit, Depends(exchange_unit)]
