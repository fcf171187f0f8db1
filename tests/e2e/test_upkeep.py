"""The upkeep a worker runs on DBOS's schedules, with real processes: an exchange whose
API process died between recording and enqueueing it is swept up and run."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from payerbridge.api.schemas import ExchangeCreate
from payerbridge.exchange.intake.submission import ExchangeSubmission, submit_exchange
from tests.builders import an_exchange_request
from tests.servers import ServerProcess, free_port

pytestmark = pytest.mark.slow


def test_an_exchange_recorded_but_never_enqueued_is_swept_up(
    server: Callable[..., ServerProcess],
) -> None:
    # The sweep every 2 s, for what sat unenqueued 1 s (30 s and 10 s by default).
    new = server(
        "new",
        env={"PAYERBRIDGE_UPKEEP_SWEEP_SECONDS": "2", "PAYERBRIDGE_UPKEEP_GRACE_SECONDS": "1"},
    )
    dead = f"http://127.0.0.1:{free_port()}/fhir"  # nobody answers: the run retries
    with new.client() as client:
        response = client.post(
            "/partners",
            json={"id": "old-plan", "name": "Old Plan", "npi": "1245319599", "base_url": dead},
        )
        assert response.status_code == 201, response.text
    raw = an_exchange_request("old-plan")
    with new.platform() as platform:  # as the API records it, then dies before enqueueing
        submission = submit_exchange(
            ExchangeSubmission(
                ExchangeCreate.model_validate(raw).to_domain(),
                raw,
                client_id="anonymous",
                idempotency_key=None,
            ),
            platform.units.exchange(),
        )
    exchange_id = submission.exchange_id
    deadline = time.monotonic() + 60  # swept every 2 s once it is 1 s old
    with new.client() as client:
        while time.monotonic() < deadline:
            state = client.get(f"/exchanges/{exchange_id}").json()["state"]
            if state != "submitted":
                break
            time.sleep(1)
        else:
            raise AssertionError(f"the exchange was never run:\n{new.log()}")
