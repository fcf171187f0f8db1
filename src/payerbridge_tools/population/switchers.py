"""Switchers: members of an old payer who move to the platform, with the request each makes.

A switcher's request carries the demographics and old coverage exactly as the
old payer's file has them, a new platform member id and a consent. Picks are
rebuilt from household seeds, so they agree with the population without it.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from payerbridge.errors import InvalidInput
from payerbridge_tools.population.households import (
    MAX_HOUSEHOLD,
    Household,
    Member,
    build_household,
    stream_households,
)
from payerbridge_tools.population.network import (
    Draw,
    Network,
    PayerContext,
    PayerProfile,
    derive_seed,
    payer_context,
)


def sample_switchers(
    network: Network,
    payer: PayerProfile,
    members: int,
    seed: int,
    as_of: date,
    count: int,
) -> list[dict[str, object]]:
    """Pick ``count`` members of ``payer`` who move to the platform, with their requests.

    Picks alternate subscribers and dependents. Members come from households that
    are complete in every population of ``members`` (indices below members / 6),
    so each pick is rebuilt from its household seed alone; tiny populations are
    walked in full instead. The demographics equal the member's Patient exactly.
    """
    if not 0 <= count <= members:
        raise InvalidInput("count must be between 0 and the number of members")
    ctx = payer_context(network, payer, seed, as_of)
    r = random.Random(derive_seed(ctx.seed, "switchers")).random
    picks = _pick_switchers(ctx, members, count, random.Random(derive_seed(ctx.seed, "picks")))
    return [
        _switcher(ctx, network, household, member, number, r)
        for number, (household, member) in enumerate(picks, 1)
    ]


def _pick_switchers(
    ctx: PayerContext, members: int, count: int, rng: random.Random
) -> list[tuple[Household, Member]]:
    complete = members // MAX_HOUSEHOLD
    if complete >= count:
        # Households below members / 6 are whole in any population of this size:
        # rebuild a few from their seeds, at most one switcher per household.
        indices = rng.sample(range(complete), min(complete, 4 * count))
        households = [build_household(ctx, index) for index in indices]
        subscribers = [(h, h.members[0]) for h in reversed(households)]
        dependents = [
            (h, h.members[1 + int(rng.random() * (len(h.members) - 1))])
            for h in reversed(households)
            if len(h.members) > 1
        ]
    else:
        everyone = [(h, m) for h in stream_households(ctx, members) for m in h.members]
        subscribers = [pair for pair in everyone if pair[1].pos == 0]
        dependents = [pair for pair in everyone if pair[1].pos > 0]
        rng.shuffle(subscribers)
        rng.shuffle(dependents)
    picks: list[tuple[Household, Member]] = []
    taken: set[int] = set()
    while len(picks) < count and (subscribers or dependents):
        for pool in (subscribers, dependents):
            while pool and len(picks) < count:
                household, member = pool.pop()
                if complete < count or household.index not in taken:
                    taken.add(household.index)
                    picks.append((household, member))
                    break
    return picks


def _switcher(
    ctx: PayerContext,
    network: Network,
    household: Household,
    member: Member,
    number: int,
    r: Draw,
) -> dict[str, object]:
    start = ctx.as_of + timedelta(days=1 + int(r() * 30))
    policy = "sensitive" if r() < 0.3 else "regular"
    return {
        "old_payer": ctx.payer.slug,
        "old_patient_id": member.patient_id,
        "request": {
            "old_payer": ctx.payer.slug,
            "member": {
                "given": list(member.given),
                "family": member.family,
                "birth_date": member.birth_date.isoformat(),
                "gender": member.gender,
                "address": {
                    "line": list(household.lines),
                    "city": household.place.city,
                    "state": household.place.state,
                    "postal_code": household.postal_code,
                },
                "phone": member.phone,
            },
            "old_coverage": {
                "member_id": member.member_id,
                "subscriber_id": household.subscriber_id,
                "relationship": member.relationship,
            },
            "new_coverage": {
                "member_id": _new_member_id(ctx, network, household.index, member.pos),
                "subscriber_id": _new_member_id(ctx, network, household.index, 0),
                "relationship": member.relationship,
                "start": start.isoformat(),
            },
            "consent": {
                "policy": policy,
                "start": ctx.as_of.isoformat(),
                "end": (ctx.as_of + timedelta(days=90)).isoformat(),
                "source_reference": f"DocumentReference/optin-{ctx.payer.slug}-{number}",
            },
        },
    }


def _new_member_id(ctx: PayerContext, network: Network, index: int, pos: int) -> str:
    """The platform's member id for a switcher: unique across old payers (affine map)."""
    number = (index * 8 + pos) * ctx.payer_count + ctx.payer_index
    return f"{network.platform.member_id_prefix}{(number * 615_482_913 + 290_011_437) % 10**9:09d}"
