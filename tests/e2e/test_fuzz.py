"""A bounded fuzz run over our own OpenAPI, against a real server with an operator's token
(schemathesis): no route answers 5xx, none accepts malformed input with a 2xx, and every
status a route answers is one its description declares. The FHIR operations are
described by the CapabilityStatement, not here."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    negative_data_rejection,
    not_a_server_error,
    status_code_conformance,
)

from tests.conftest import BACKEND
from tests.servers import ALL_SCOPES, ServerProcess, start_server

pytestmark = pytest.mark.skipif(
    BACKEND == "postgres", reason="the API surface is the same on both stores; fuzzed once"
)

EXAMPLES = 25  # per operation and mode: about 1,000 requests in all


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    payer = start_server(Path(tmp_path_factory.mktemp("fuzz")) / "payer", env={}, import_files=[])
    try:
        yield payer, payer.register_client("ops", scope=ALL_SCOPES)
    finally:
        payer.stop()


def _operations(payer: ServerProcess, token: str) -> list[Any]:
    schema = schemathesis.openapi.from_url(
        f"{payer.base_url}/openapi.json", headers={"Authorization": f"Bearer {token}"}
    )
    return [result.ok() for result in schema.get_all_operations()]


def _negatable(operation: Any) -> bool:
    """Whether negative mode has anything to make malformed: schemathesis leaves path
    parameters well-formed (a malformed one names another route), so an operation with
    nothing else has nothing, and hypothesis spent half a second of CPU on each of some
    thirty such operations before it gave up."""
    return bool(operation.get_request_payload_content_types()) or any(
        parameter.location != "path" for parameter in operation.iter_parameters()
    )


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
@pytest.mark.timeout(600)
def test_the_api_never_fails_and_refuses_malformed_input(
    fuzzed: tuple[ServerProcess, str], mode: GenerationMode
) -> None:
    payer, token = fuzzed
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "fuzz-key-1"}
    operations = _operations(payer, token)
    assert len(operations) >= 20
    if mode is GenerationMode.NEGATIVE:
        operations = [operation for operation in operations if _negatable(operation)]
    for operation in operations:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(mode))
        def fuzz(case: Any) -> None:
            case.call_and_validate(
                base_url=payer.base_url,
                headers=headers,
                checks=[not_a_server_error, status_code_conformance, negative_data_rejection],
                timeout=30,
            )

        try:
            fuzz()
        except Unsatisfiable:
            # Nothing in the operation can be malformed (no parameters, no body).
            assert mode is GenerationMode.NEGATIVE, operation.label
