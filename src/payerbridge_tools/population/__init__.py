"""Synthetic payer network and member populations: the one generator of the sandbox and the
benchmarks (pure, seeded).

A network is N old payers (``payer-a``, ``payer-b``, ...) plus the ``platform``
payer that will ask them for data. For each old payer this package streams a FHIR
R4 population household by household: a subscriber, often a spouse, up to four
children (twins included), each with a Patient, a Coverage, a few years of
clinical and claims history, and one Provenance.

Everything derives from ``random.Random`` instances seeded from (seed, payer
slug, household index) with a stable hash, plus the ``as_of`` date passed in.
There is no I/O, no clock and no global randomness, so the same arguments give
the same resources, and any one household can be rebuilt on its own. That is
how :func:`sample_switchers` agrees with :func:`generate_payer_population`
without holding the population in memory.

All people and identifiers are synthetic, and so are phone numbers in the
sandbox's mix (555 exchange); cities, states, area codes and each city's first
ZIP code are real so that addresses look right.
About 3% of members get sensitive care (substance use, HIV, depression,
contraception); those resources carry ``meta.security`` labels (v3-ActCode
ETH/HIV/PSY/SEX and confidentiality R) so consent features have something to
withhold.

The sandbox draws its households with ``mix.SANDBOX``; the identity benchmark
(``payerbridge_tools.bench.identity_data``) takes its members from the same
households, drawn with a harder ``HouseholdMix`` (more twins, Jr and Sr, phone
numbers and ZIP codes enough for a million people).

This package composes its modules into the stream; the parts live in
``network`` (payers, NPIs, seeds), ``mix`` (the shares households are drawn
with), ``vocabulary`` and ``clinical_codes``
(tables), ``providers`` (the shared directory), ``households`` (people),
``enrollment`` (Patient, Coverage, Provenance), ``chart`` and ``entries`` (each
member's clinical and claims history), ``shapes`` (FHIR building blocks) and
``switchers``. The ``X as X`` imports below keep the names this module exported
before it was split importable from here.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

from payerbridge.errors import InvalidInput
from payerbridge.npi import npi_check_digit as npi_check_digit
from payerbridge_tools.population.chart import Chart
from payerbridge_tools.population.enrollment import (
    coverage_resource,
    patient_resource,
    provenance_resource,
)
from payerbridge_tools.population.households import MAX_HOUSEHOLD as MAX_HOUSEHOLD
from payerbridge_tools.population.households import Household, stream_households
from payerbridge_tools.population.mix import SANDBOX as SANDBOX
from payerbridge_tools.population.mix import HouseholdMix
from payerbridge_tools.population.network import PLATFORM_SLUG as PLATFORM_SLUG
from payerbridge_tools.population.network import (
    Network,
    PayerContext,
    PayerProfile,
    build_network,
    payer_context,
)
from payerbridge_tools.population.network import derive_seed as derive_seed
from payerbridge_tools.population.providers import directory
from payerbridge_tools.population.shapes import NPI_SYSTEM as NPI_SYSTEM
from payerbridge_tools.population.shapes import PRIOR_AUTH_PROFILE as PRIOR_AUTH_PROFILE
from payerbridge_tools.population.shapes import Resource
from payerbridge_tools.population.switchers import sample_switchers
from payerbridge_tools.population.vocabulary import Place as Place

__all__ = [
    "HouseholdMix",
    "Network",
    "PayerProfile",
    "Resource",
    "build_network",
    "generate_payer_population",
    "sample_switchers",
]


def generate_payer_population(
    network: Network,
    payer: PayerProfile,
    members: int,
    seed: int,
    as_of: date,
    history_years: int = 3,
) -> Iterator[Resource]:
    """Stream one old payer's file: the directory, then household after household.

    Within a household: Patients, Coverages, each member's history, then one
    Provenance per member, so a streaming importer meets referenced resources
    first. Memory does not grow with ``members``.
    """
    if members < 0:
        raise InvalidInput("members must not be negative")
    ctx = payer_context(network, payer, seed, as_of, history_years)
    return _stream(ctx, members)


def _stream(ctx: PayerContext, members: int) -> Iterator[Resource]:
    yield from directory(ctx)
    for household in stream_households(ctx, members):
        yield from _household_resources(ctx, household)


def _household_resources(ctx: PayerContext, household: Household) -> Iterator[Resource]:
    for member in household.members:
        yield patient_resource(ctx, household, member)
    for member in household.members:
        yield coverage_resource(ctx, household, member)
    targets: list[list[str]] = []
    for member in household.members:
        history = Chart(ctx, household, member).build()
        yield from history
        targets.append([f"{resource['resourceType']}/{resource['id']}" for resource in history])
    for member, history_refs in zip(household.members, targets, strict=True):
        yield provenance_resource(ctx, household, member, history_refs)
