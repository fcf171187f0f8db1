"""Incremental onboardings (issue 54, ADR 0040): a run may ask the old payer's exports
only for what changed after an instant (``_since`` on ``$davinci-data-export``), given,
or the ``received_at`` of the client's last completed run with the same old payer
(``last``).

A run's ``received_at`` is what its data reflects: the earliest ``transactionTime`` of
its chunks' export manifests, which Bulk Data gives for the next request's ``_since``
(the old payer's clock, which judges ``_since``: no skew between the payers loses a
change), or our clock's time of receipt where a manifest has none. What a member's
answer held that changed is judged as an exchange's is (``exchange.received.increments``): a
member whose answer held nothing changed ends ``nothing-new``. An incremental answer
removes nothing (an onboarding never removes what it holds).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Literal

from payerbridge.errors import InvalidInput, Issue
from payerbridge.exchange.reasons import ExchangeReason
from payerbridge.exchange.received.increments import changed_among
from payerbridge.fhir.resources import compartment_patient
from payerbridge.onboarding.ports import OnboardingStore
from payerbridge.timestamps import instant_of, utc_iso
from payerbridge.types import ClientId, PartnerId

__all__ = [
    "LAST",
    "SinceAsked",
    "changed_per_member",
    "export_time",
    "nothing_new",
    "parse_since",
    "since_parameters",
    "since_asked",
]

# ``since`` asked as: the received_at of the client's last completed run with the partner.
LAST: Final = "last"
SinceAsked = datetime | Literal["last"] | None


def parse_since(text: str | None, *, name: str = "since") -> SinceAsked:
    """``text`` as a run's ``since``: ``last``, or a FHIR instant with its zone (in UTC);
    InvalidInput naming ``name`` otherwise."""
    if text is None:
        return None
    if text.strip() == LAST:
        return LAST
    instant = instant_of(text.strip())
    if instant is None:
        message = (
            f"{name} must be a FHIR instant with a time zone, e.g. 2027-01-01T00:00:00Z, "
            f"or '{LAST}' (since the last completed onboarding with the partner)"
        )
        raise InvalidInput(message, issues=[Issue(message, name, "invalid")])
    return instant


def since_asked(
    store: OnboardingStore, client_id: ClientId, partner_id: PartnerId, since: SinceAsked
) -> datetime | None:
    """The instant a run asks since: ``since`` itself, or for ``last`` what the client's
    last completed run with the partner reflects; InvalidInput when there is none."""
    if since != LAST:
        return since
    last = store.last_received_at(client_id, partner_id)
    if last is None:
        text = (
            f"since '{LAST}': no completed onboarding with '{partner_id}' received data "
            "yet; onboard the members once without since first"
        )
        raise InvalidInput(text, issues=[Issue(text, "since", "not-found")])
    return last


def since_parameters(since: datetime | None) -> list[dict[str, str]]:
    """The ``_since`` parameter of an export's Parameters body (none without ``since``)."""
    return [] if since is None else [{"name": "_since", "valueInstant": utc_iso(since)}]


def export_time(manifest: Mapping[str, Any], received: datetime) -> datetime:
    """What an export reflects: its manifest's ``transactionTime``, else ``received``."""
    stamp = manifest.get("transactionTime")
    instant = instant_of(stamp) if isinstance(stamp, str) else None
    return instant or received


def changed_per_member(
    resources: Iterable[dict[str, Any]], members: Mapping[str, int], since: datetime
) -> dict[int, int]:
    """For each member (``members``: the old payer's Patient id to its position), how
    many of the resources of its compartment were last updated after ``since`` (the old
    payer's Provenance left out); a member with none changed is counted 0."""
    theirs: dict[str, list[dict[str, Any]]] = {patient: [] for patient in members}
    for resource in resources:
        owner = compartment_patient(resource) if "resourceType" in resource else None
        if owner in theirs:
            theirs[owner].append(resource)
    return {
        members[patient]: sum(changed_among(own, since).values()) for patient, own in theirs.items()
    }


def nothing_new(since: datetime | None) -> dict[str, str]:
    """The reason of a member whose incremental answer held nothing changed."""
    after = f" since {utc_iso(since)}" if since is not None else ""
    return {
        "code": ExchangeReason.NOTHING_NEW.value,
        "text": f"matched; the old payer has nothing new{after}",
    }
