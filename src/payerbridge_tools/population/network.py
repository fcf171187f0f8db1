"""The sandbox network, and the seeded context one old payer's population is built in.

A network is N old payers (``payer-a``, ``payer-b``, ...) plus the ``platform``
payer that will ask them for data; each gets a synthetic NPI that passes the
CMS check digit. Nothing here is random: the context only carries the seed that
every household and history derives its own ``random.Random`` from.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from payerbridge.errors import InvalidInput
from payerbridge.npi import npi_check_digit
from payerbridge_tools.population.mix import SANDBOX, HouseholdMix

Draw = Callable[[], float]  # a bound ``random.Random.random``

PLATFORM_SLUG = "platform"

# --- the network --------------------------------------------------------------

_PAYER_NAMES = (
    "Aspen Mutual Health",
    "Bluewater Health Plan",
    "Cardinal Care Insurance",
    "Driftwood Health",
    "Evergreen Benefit Trust",
    "Foxglove Health Partners",
    "Granite Peak Health Plan",
    "Hollowbrook Mutual",
    "Ironwood Health Plan",
    "Juniper Mutual Insurance",
    "Kestrel Health",
    "Lakeshore Health Alliance",
    "Meadowlark Health Plan",
    "Northgate Benefit Plan",
    "Oakleaf Health Cooperative",
    "Prairie Sky Health",
    "Quarry Hill Health Plan",
    "Redwood Coast Health",
    "Sagebrush Health Plan",
    "Tidewater Mutual Health",
    "Upland Health Partners",
    "Valley Oak Health",
    "Willow Creek Health Plan",
    "Xenia Health Cooperative",
    "Yarrow Health",
    "Zephyr Health Plan",
)
_PLATFORM_NAME = "Northwind Health Plan"
NPI_PAYER, NPI_PLATFORM, NPI_PROVIDER_ORG, NPI_PRACTITIONER = 0, 1, 2, 3


@dataclass(frozen=True)
class PayerProfile:
    """A payer in the sandbox network, as the other payers know it."""

    slug: str
    name: str
    npi: str
    member_id_prefix: str


@dataclass(frozen=True)
class Network:
    """The old payers that hold data and the platform payer that requests it."""

    payers: tuple[PayerProfile, ...]
    platform: PayerProfile


def build_network(payer_count: int) -> Network:
    """Name payers ``payer-a``, ``payer-b``, ... and give them NPIs (no randomness)."""
    if payer_count < 1:
        raise InvalidInput("a sandbox network needs at least one old payer")
    payers = tuple(_payer_profile(index) for index in range(payer_count))
    platform = PayerProfile(PLATFORM_SLUG, _PLATFORM_NAME, synthetic_npi(NPI_PLATFORM, 0), "NW")
    return Network(payers=payers, platform=platform)


def _payer_profile(index: int) -> PayerProfile:
    letters = _letters(index)
    base = _PAYER_NAMES[index % len(_PAYER_NAMES)]
    lap = index // len(_PAYER_NAMES)
    name = f"{base} {lap + 1}" if lap else base
    initials = "".join(word[0] for word in base.split()[:2]).upper()
    npi = synthetic_npi(NPI_PAYER, index)
    return PayerProfile(f"payer-{letters}", name, npi, initials + letters.upper())


def _letters(index: int) -> str:
    """0 -> a, 25 -> z, 26 -> aa (bijective base 26)."""
    letters = ""
    number = index + 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return letters


# --- NPIs and seeds -----------------------------------------------------------


def synthetic_npi(kind: int, index: int) -> str:
    """A 10-digit NPI: an affine map of (kind, index), then the CMS Luhn check digit."""
    body = ((kind * 1_000_000 + index) * 7_654_321 + 1_234_567) % 100_000_000
    base = f"{1 if kind == NPI_PRACTITIONER else 2}{body:08d}"
    return base + str(npi_check_digit(base))


def derive_seed(*parts: object) -> int:
    """A stable 64-bit seed from any parts; unlike ``hash()`` it is the same in every process."""
    text = "|".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


# --- payer context ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PayerContext:
    """One old payer's generation settings: who it is, its seed, the as-of date and window,
    and the mix its households are drawn with."""

    payer: PayerProfile
    payer_index: int
    payer_count: int
    abbr: str  # id prefix in the file: "pa" for payer-a
    seed: int
    as_of: date
    today: int  # as_of ordinal
    window_days: int
    mix: HouseholdMix = SANDBOX

    @property
    def org_id(self) -> str:
        return f"{self.abbr}-org-payer"


def payer_context(
    network: Network,
    payer: PayerProfile,
    seed: int,
    as_of: date,
    history_years: int = 3,
    mix: HouseholdMix = SANDBOX,
) -> PayerContext:
    if payer not in network.payers:
        raise InvalidInput("the payer is not one of the network's old payers")
    if history_years < 0:
        raise InvalidInput("history_years must not be negative")
    index = network.payers.index(payer)
    return PayerContext(
        payer=payer,
        payer_index=index,
        payer_count=len(network.payers),
        abbr="p" + _letters(index),
        seed=derive_seed(seed, payer.slug),
        as_of=as_of,
        today=as_of.toordinal(),
        window_days=round(history_years * 365.25),
        mix=mix,
    )
