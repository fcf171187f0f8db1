"""The units of work (ADR 0051) the consent, disclosure, bulk, onboarding, sources and
webhooks routes take, one per request, as dependencies. Each is ``async``: handing out a
unit is a copy, not worth the thread hop FastAPI gives a plain ``def`` dependency."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from payerbridge.api.deps import current_platform
from payerbridge.backends.unit import SourcesUnit
from payerbridge.bulk.unit import BulkUnit
from payerbridge.disclosure.unit import DisclosureUnit
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.onboarding.unit import OnboardingUnit
from payerbridge.webhooks.unit import WebhookUnit

__all__ = [
    "BulkUnitDep",
    "DisclosureUnitDep",
    "OptInUnitDep",
    "OnboardingUnitDep",
    "SourcesUnitDep",
    "WebhookUnitDep",
]


async def disclosure_unit(request: Request) -> DisclosureUnit:
    return current_platform(request).units.disclosure()


async def opt_in_unit(request: Request) -> ExchangeUnit:
    """The exchange room's unit: a member's opt-ins are captured and revoked there (a
    revocation stops the exchanges under it in the same transaction)."""
    return current_platform(request).units.exchange()


async def sources_unit(request: Request) -> SourcesUnit:
    return current_platform(request).units.sources()


async def webhook_unit(request: Request) -> WebhookUnit:
    return current_platform(request).units.webhooks()


async def bulk_unit(request: Request) -> BulkUnit:
    return current_platform(request).units.bulk()


async def onboarding_unit(request: Request) -> OnboardingUnit:
    return current_platform(request).units.onboarding()


DisclosureUnitDep = Annotated[DisclosureUnit, Depends(disclosure_unit)]
OptInUnitDep = Annotated[ExchangeUnit, Depends(opt_in_unit)]
SourcesUnitDep = Annotated[SourcesUnit, Depends(sources_unit)]
WebhookUnitDep = Annotated[WebhookUnit, Depends(webhook_unit)]
BulkUnitDep = Annotated[BulkUnit, Depends(bulk_unit)]
OnboardingUnitDep = Annotated[OnboardingUnit, Depends(onboarding_unit)]
