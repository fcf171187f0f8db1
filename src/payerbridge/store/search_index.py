"""The search index: the tokens a resource is found by (``token_entries``), and their
blind keys (``fhir_tokens.value_key``, ADR 0044), rebuilt from the sealed bodies when the
identity index's secret changes."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

import orjson
from sqlalchemy import Connection, delete, insert, select

from payerbridge.store.at_rest import at_rest
from payerbridge.store.sealed_fields import RESOURCE_BODY
from payerbridge.store.tables import fhir_resources, fhir_tokens

__all__ = ["rekey_tokens", "token_entries"]


def rekey_tokens(connection: Connection, token_key: bytes, *, batch: int = 1000) -> None:
    """The search index's blind keys computed again from the bodies, under ``token_key``
    (the key the identity index's secret derives, ADR 0044): as the links', a new secret
    keys them."""
    resources, tokens = fhir_resources.c, fhir_tokens.c
    opened = at_rest(connection)
    after = ""
    while True:
        rows = connection.execute(
            select(resources.ref, resources.resource_type, resources.body)
            .where(resources.ref > after)
            .order_by(resources.ref)
            .limit(batch)
        ).all()
        if not rows:
            return
        connection.execute(delete(fhir_tokens).where(tokens.ref.in_([r.ref for r in rows])))
        keyed = [
            {
                "ref": row.ref,
                "resource_type": row.resource_type,
                "param": param,
                "system": system,
                "value": "",
                "value_key": hmac.digest(token_key, value.encode(), "sha256").hex(),
            }
            for row in rows
            for param, system, value in token_entries(
                orjson.loads(opened.open(row.body, RESOURCE_BODY, row.ref))
            )
        ]
        if keyed:
            connection.execute(insert(fhir_tokens), keyed)
        after = rows[-1].ref


def token_entries(resource: dict[str, Any]) -> Iterator[tuple[str, str, str]]:
    """(param, system, value) search tokens: every identifier, and Coverage.subscriberId."""
    identifiers = resource.get("identifier")
    if isinstance(identifiers, dict):  # Organization-like single identifiers do not exist in R4,
        identifiers = [identifiers]  # but tolerate them rather than index nothing.
    if isinstance(identifiers, list):
        for identifier in identifiers:
            if isinstance(identifier, dict):
                value = identifier.get("value")
                if isinstance(value, str) and value:
                    system = identifier.get("system")
                    yield "identifier", system if isinstance(system, str) else "", value
    if resource["resourceType"] == "Coverage":
        subscriber_id = resource.get("subscriberId")
        if isinstance(subscriber_id, str) and subscriber_id:
            yield "subscriber-id", "", subscriber_id
