"""The adapter of each live source the sources file names (ADR 0031)."""

from __future__ import annotations

from payerbridge.backends.ports import LiveSource
from payerbridge.backends.sources import LiveSourceSpec, Sources
from payerbridge.errors import InvalidInput
from payerbridge.net.addresses import AddressPolicy
from payerbridge.sources.fhir_server import FhirServerSource
from payerbridge.sources.settings import FhirServerSettings, read_private_key

__all__ = ["live_adapters"]


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
