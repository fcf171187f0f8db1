"""The adapter of each live source the sources file names (ADR 0031), and of each
destination (ADR 0053)."""

from __future__ import annotations

from payerbridge.backends.ports import LiveSource
from payerbridge.backends.sources import DestinationSpec, LiveSourceSpec, Sources
from payerbridge.delivery.model import DestinationPolicy
from payerbridge.errors import InvalidInput, Issue
from payerbridge.net.addresses import AddressPolicy
from payerbridge.sources.destination import DestinationTarget, FhirDestination
from payerbridge.sources.fhir_server import FhirServerSource
from payerbridge.sources.settings import PER_TYPE_SCOPE, FhirServerSettings, read_private_key

__all__ = ["destination_adapters", "live_adapters"]


def live_adapters(sources: Sources, policy: AddressPolicy) -> dict[str, LiveSource]:
    """A FHIR-server adapter for each live source, its calls held to ``policy`` (where
    outbound calls may go); InvalidInput naming the source when its settings cannot
    make one (an unreadable key, say)."""
    return {spec.id: _fhir_server(spec, policy) for spec in sources.live()}


def _fhir_server(spec: LiveSourceSpec, policy: AddressPolicy) -> LiveSource:
    auth = spec.auth
    try:
        settings = FhirServerSettings(
            id=spec.id,
            base_url=spec.base_url.rstrip("/"),
            types=frozenset(spec.types),
            client_id=auth.client_id if auth else None,
            private_key=read_private_key(auth.key_file) if auth else None,
            token_url=auth.token_url if auth else None,
            scope=auth.scope if auth else "system/*.read",
            page_size=spec.page_size,
        )
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"source '{spec.id}': {exc}") from None
    return FhirServerSource(settings, policy=policy)


def destination_adapters(
    sources: Sources, policy: AddressPolicy
) -> tuple[dict[str, FhirDestination], dict[str, DestinationPolicy]]:
    """A FHIR-server adapter and a retry policy for each destination; InvalidInput
    naming every destination whose settings cannot make one (an unreadable key, say)."""
    adapters, policies, issues = {}, {}, []
    for spec in sources.destinations:
        try:
            adapters[spec.id] = _destination(spec, policy)
        except (ValueError, OSError) as exc:
            issues.append(Issue(f"destination '{spec.id}': {exc}"))
            continue
        policies[spec.id] = DestinationPolicy(
            budget_seconds=spec.budget_seconds, max_entries=spec.max_entries
        )
    if issues:
        for adapter in adapters.values():
            adapter.close()
        raise InvalidInput(f"{len(issues)} destination(s) cannot be used", issues=issues)
    return adapters, policies


def _destination(spec: DestinationSpec, policy: AddressPolicy) -> FhirDestination:
    types = frozenset(spec.types) if spec.types else None
    auth = spec.auth
    smart = None
    if auth is not None:
        scope = auth.scope
        if scope == PER_TYPE_SCOPE:
            scope = " ".join(f"system/{t}.write" for t in sorted(types or ()))
        smart = (auth.client_id, read_private_key(auth.key_file), scope, auth.token_url)
    target = DestinationTarget(spec.id, spec.base_url, types, spec.timeout_seconds)
    return FhirDestination.with_key(target, smart, policy)
