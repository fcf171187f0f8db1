"""The search index's blind keys (``fhir_tokens.value_key``, ADR 0044), rebuilt from the
sealed bodies when the identity index's secret changes."""

from __future__ import annotations

import hmac

import orjson
from sqlalchemy import Connection, delete, insert, select

from payerbridge.fhir.resources import token_entries
from payerbridge.store.at_rest import at_rest
from payerbridge.store.sealed_fields import RESOURCE_BODY
from payerbridge.store.tables import fhir_resources, fhir_tokens

__all__ = ["rekey_tokens"]


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
