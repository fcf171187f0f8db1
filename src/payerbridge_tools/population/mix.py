"""How a population's households are drawn: the shares the sandbox and the benchmarks differ in.

One generator serves both. The sandbox draws small, realistic populations (``SANDBOX``); the
identity benchmark asks for the same households made harder to match and spread as a large
plan's are (more twins, sons named after their fathers, phone numbers and ZIP codes enough
for a million people).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SANDBOX", "HouseholdMix"]


@dataclass(frozen=True, slots=True)
class HouseholdMix:
    """The shares a population's households are drawn with.

    ``twin_share``: of births, a twin born with the child (same birth date and surname,
    another first name). ``junior_share``: of subscribers who are fathers of a son, one who
    named his eldest son after himself (Jr on the son, Sr on him). ``has_fictional_phones``:
    every number in the 555 exchange, which is never a real line (about 10,000 per area
    code); else any exchange from 200, as a population of millions needs to keep households'
    numbers apart. ``zips_per_place``: ZIP codes per city (a large population spreads over
    more; the first is the city's real one).
    """

    twin_share: float = 0.012
    junior_share: float = 0.0
    has_fictional_phones: bool = True
    zips_per_place: int = 1

    def __post_init__(self) -> None:
        if not (0.0 <= self.twin_share <= 1.0 and 0.0 <= self.junior_share <= 1.0):
            raise ValueError("shares must be between 0 and 1")
        if self.zips_per_place < 1:
            raise ValueError("zips_per_place must be at least 1")


SANDBOX = HouseholdMix()
"""The sandbox's: about 1% of births twins, no juniors, 555 numbers, one ZIP per city."""
