"""The disclosure room's rules as configured: what its paged answers are built on."""

from __future__ import annotations

from datetime import timedelta

from payerbridge.config import Settings
from payerbridge.disclosure.paging import PagingRules
from payerbridge.fhir.resources import SUPPORTED_TYPES
from payerbridge.wiring.ports import DisclosureRules

__all__ = ["paging_rules"]


def paging_rules(settings: Settings, disclosure: DisclosureRules) -> PagingRules:
    """``$everything`` and searches: our FHIR base and NPI, the page size, how long a
    first page's next links work, the service-date window, what may leave."""
    return PagingRules(
        fhir_base=f"{settings.base_url}/fhir",
        source_npi=settings.org_npi,
        page_size=settings.everything_page_size,
        snapshot_lifetime=timedelta(seconds=settings.everything_snapshot_seconds),
        payer_to_payer_years=settings.payer_to_payer_years,
        segmentation=disclosure.segmentation,
        held_types=SUPPORTED_TYPES,
        scope=disclosure.scope,
    )
