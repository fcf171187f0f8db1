"""Each room's unit of work as a route's dependency (ADR 0051): a fresh one per request,
from the platform's units, so a handler takes the unit its use case takes. Each is
``async`` and reads the platform off the request itself: handing out a unit is a copy
with no I/O, not worth the thread FastAPI gives a plain ``def`` dependency. (Who the
caller is, which reads the security unit too, is ``deps.py``'s.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from payerbridge.api.deps import current_platform
from payerbridge.backends.unit import SourcesUnit
from payerbridge.bulk.unit import BulkUnit
from payerbridge.compliance.unit import ComplianceUnit
from payerbridge.disclosure.unit import DisclosureUnit
from payerbridge.exchange.unit import ExchangeUnit
from payerbridge.identity.unit import IdentityUnit
from payerbridge.onboarding.unit import OnboardingUnit
from payerbridge.oversight.health_unit import PartnerHealthUnit
from payerbridge.oversight.unit import AuditUnit
from payerbridge.provider_access.unit import ProviderAccessUnit
from payerbridge.routing.unit import PartnersUnit
from payerbridge.security.unit import SecurityUnit
from payerbridge.webhooks.unit import WebhookUnit

__all__ = [
    "AuditUnitDep",
    "SecurityUnitDep",
    "BulkUnitDep",
    "ComplianceUnitDep",
    "DisclosureUnitDep",
    "ExchangeUnitDep",
    "IdentityUnitDep",
    "OnboardingUnitDep",
    "ProviderAccessUnitDep",
    "OptInUnitDep",
    "PartnerHealthUnitDep",
    "PartnersUnitDep",
    "SourcesUnitDep",
    "WebhookUnitDep",
]


async def security_unit(request: Request) -> SecurityUnit:
    return current_platform(request).units.security()


async def audit_unit(request: Request) -> AuditUnit:
    return current_platform(request).units.audit()


async def exchange_unit(request: Request) -> ExchangeUnit:
    return current_platform(request).units.exchange()


async def opt_in_unit(request: Request) -> ExchangeUnit:
    """The exchange room's unit: a member's opt-ins are captured and revoked there (a
    revocation stops the exchanges under it in the same transaction)."""
    return current_platform(request).units.exchange()


async def identity_unit(request: Request) -> IdentityUnit:
    return current_platform(request).units.identity()


async def disclosure_unit(request: Request) -> DisclosureUnit:
    return current_platform(request).units.disclosure()


async def partners_unit(request: Request) -> PartnersUnit:
    return current_platform(request).units.partners()


async def partner_health_unit(request: Request) -> PartnerHealthUnit:
    return current_platform(request).units.partner_health()


async def compliance_unit(request: Request) -> ComplianceUnit:
    return current_platform(request).units.compliance()


async def provider_access_unit(request: Request) -> ProviderAccessUnit:
    return current_platform(request).units.provider_access()


async def sources_unit(request: Request) -> SourcesUnit:
    return current_platform(request).units.sources()


async def webhook_unit(request: Request) -> WebhookUnit:
    return current_platform(request).units.webhooks()


async def bulk_unit(request: Request) -> BulkUnit:
    return current_platform(request).units.bulk()


async def onboarding_unit(request: Request) -> OnboardingUnit:
    return current_platform(request).units.onboarding()


SecurityUnitDep = Annotated[SecurityUnit, Depends(security_unit)]
AuditUnitDep = Annotated[AuditUnit, Depends(audit_unit)]
ExchangeUnitDep = Annotated[ExchangeUnit, Depends(exchange_unit)]
OptInUnitDep = Annotated[ExchangeUnit, Depends(opt_in_unit)]
IdentityUnitDep = Annotated[IdentityUnit, Depends(identity_unit)]
DisclosureUnitDep = Annotated[DisclosureUnit, Depends(disclosure_unit)]
PartnersUnitDep = Annotated[PartnersUnit, Depends(partners_unit)]
PartnerHealthUnitDep = Annotated[PartnerHealthUnit, Depends(partner_health_unit)]
ComplianceUnitDep = Annotated[ComplianceUnit, Depends(compliance_unit)]
SourcesUnitDep = Annotated[SourcesUnit, Depends(sources_unit)]
WebhookUnitDep = Annotated[WebhookUnit, Depends(webhook_unit)]
BulkUnitDep = Annotated[BulkUnit, Depends(bulk_unit)]
OnboardingUnitDep = Annotated[OnboardingUnit, Depends(onboarding_unit)]
ProviderAccessUnitDep = Annotated[ProviderAccessUnit, Depends(provider_access_unit)]
