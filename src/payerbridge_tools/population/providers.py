"""The provider directory: organizations and practitioners that every payer file shares.

The same NPIs appear in every payer's file, as in real networks; only the
resource ids carry the payer's prefix. Each file opens with this directory (the
payer's own Organization first) so that later references resolve.
"""

from __future__ import annotations

from collections.abc import Iterator

from payerbridge_tools.population.network import (
    NPI_PRACTITIONER,
    NPI_PROVIDER_ORG,
    PayerContext,
    synthetic_npi,
)
from payerbridge_tools.population.shapes import TERMINOLOGY, Resource, concept, npi_identifier

PROVIDER_ORGS = (
    "Riverbend Family Medicine",
    "Summit Internal Medicine",
    "Maple Street Health Center",
    "Lakeside Pediatrics",
    "Crossroads Urgent Care",
    "St. Brigid Regional Medical Center",
    "Harbor Behavioral Health",
    "Westside Women's Health",
)
# indices into PROVIDER_ORGS
INTERNAL, PEDIATRICS, URGENT_CARE, HOSPITAL, BEHAVIORAL, WOMENS = 1, 3, 4, 5, 6, 7
_PRACTITIONERS = (  # (family, given, gender, org index)
    ("Okafor", "Adaeze", "female", 0),
    ("Lindqvist", "Erik", "male", 0),
    ("Ramírez", "Sofía", "female", 1),
    ("Chen", "David", "male", 1),
    ("O'Connell", "Bridget", "female", 2),
    ("Patel", "Anil", "male", 2),
    ("Nakamura", "Emi", "female", 3),
    ("Brooks", "Marcus", "male", 3),
    ("Haddad", "Layla", "female", 4),
    ("Kowalski", "Piotr", "male", 4),
    ("Nguyen", "Thanh", "male", 5),
    ("Friedman", "Rachel", "female", 5),
    ("Castillo", "Marisol", "female", 6),
    ("Whitaker", "James", "male", 6),
    ("Delacroix", "Amélie", "female", 7),
    ("Abara", "Chioma", "female", 7),
)
ORG_PRACTITIONERS = tuple(
    tuple(index for index, row in enumerate(_PRACTITIONERS) if row[3] == org)
    for org in range(len(PROVIDER_ORGS))
)


def directory(ctx: PayerContext) -> Iterator[Resource]:
    """The payer's Organization, then the provider Organizations and Practitioners."""
    yield {
        "resourceType": "Organization",
        "id": ctx.org_id,
        "identifier": npi_identifier(ctx.payer.npi),
        "active": True,
        "type": [concept(TERMINOLOGY + "organization-type", ("pay", "Payer"))],
        "name": ctx.payer.name,
    }
    for index, name in enumerate(PROVIDER_ORGS):
        yield {
            "resourceType": "Organization",
            "id": f"{ctx.abbr}-org-{index + 1:02d}",
            "identifier": npi_identifier(synthetic_npi(NPI_PROVIDER_ORG, index)),
            "active": True,
            "type": [concept(TERMINOLOGY + "organization-type", ("prov", "Healthcare Provider"))],
            "name": name,
        }
    for index, (family, given, gender, _org) in enumerate(_PRACTITIONERS):
        yield {
            "resourceType": "Practitioner",
            "id": f"{ctx.abbr}-prac-{index + 1:02d}",
            "identifier": npi_identifier(synthetic_npi(NPI_PRACTITIONER, index)),
            "active": True,
            "name": [{"family": family, "given": [given], "prefix": ["Dr."]}],
            "gender": gender,
        }
