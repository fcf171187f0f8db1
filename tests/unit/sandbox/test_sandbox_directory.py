"""The sandbox's directory bundle reads as the sandbox network's FHIR partners, at the
addresses it is given: what the demo imports and approves."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from payerbridge.routing.directory_bundle import read_directory_bundle
from payerbridge_tools.population.network import build_network
from payerbridge_tools.sandbox.directory import sandbox_directory


def test_the_sandbox_directory_names_the_networks_partners_at_their_addresses() -> None:
    payers = build_network(3).payers
    bases = {p.slug: f"http://127.0.0.1:{8101 + n}/" for n, p in enumerate(payers)}
    read = read_directory_bundle(sandbox_directory(bases), fallback_name="x", now=datetime.now(UTC))
    assert read.directory == "payerbridge-sandbox"
    assert [(o.partner_id, o.name, o.npi) for o in read.organizations] == [
        (p.slug, p.name, p.npi) for p in payers
    ]
    assert [[e.url for e in o.endpoints] for o in read.organizations] == [
        [f"http://127.0.0.1:{8101 + n}/fhir"] for n in range(3)
    ]
    assert [o.endpoints[0].versions for o in read.organizations] == [("2.0",), ("2.1",), ("2.2",)]
    assert read.not_ours == 4  # three patient-access endpoints and a clinic
    assert read.issues == ()


def test_only_the_partners_given_are_in_it() -> None:
    document = sandbox_directory({"payer-b": "http://127.0.0.1:8102"})
    read = read_directory_bundle(document, fallback_name="x", now=datetime.now(UTC))
    assert [o.partner_id for o in read.organizations] == ["payer-b"]
    assert "{payer-" not in orjson.dumps(document).decode()
    with pytest.raises(KeyError, match="payer-z"):
        sandbox_directory({"payer-z": "http://z"})
