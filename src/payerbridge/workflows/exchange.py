"""The outbound exchange as a DBOS workflow: each use case of ``exchange.service`` is one step.

DBOS records each step's result in its system database, so after a crash the
workflow resumes at the first step that did not finish; the steps themselves
check the exchange's state so a step cut off after its commit is not applied twice.
Partner outages are retried by DBOS with backoff; when retries are spent the
exchange fails with ``partner-unavailable``.
"""

from __future__ import annotations

import logging
from typing import Any

from dbos import DBOS, SetWorkflowID
from dbos import error as dbos_error

from payerbridge.errors import PartnerUnavailable
from payerbridge.exchange import service
from payerbridge.exchange.model import ExchangeRequest
from payerbridge.exchange.schemas import ExchangeCreate
from payerbridge.exchange.service import ExchangePorts, StepResult
from payerbridge.logging import bind_context

__all__ = ["bind_ports", "exchange_workflow", "start_exchange"]

logger = logging.getLogger(__name__)

_ports: ExchangePorts | None = None


def bind_ports(ports: ExchangePorts) -> None:
    """Called once by bootstrap before DBOS launches (workflow functions are module-level)."""
    global _ports
    _ports = ports


def _current() -> ExchangePorts:
    if _ports is None:
        raise RuntimeError("workflows.exchange.bind_ports was not called")
    return _ports


def _request(exchange_id: str) -> ExchangeRequest:
    record = _current().exchanges.get(exchange_id)
    return ExchangeCreate.model_validate(record.request).to_domain()


def _as_dict(result: StepResult) -> dict[str, Any]:
    return {"state": result.state.value, "done": result.done}


def _is_transient(error: BaseException) -> bool:
    return isinstance(error, PartnerUnavailable)


@DBOS.step()
def prepare_step(exchange_id: str) -> dict[str, Any]:
    return _as_dict(service.prepare(_current(), exchange_id, _request(exchange_id)))


@DBOS.step(
    retries_allowed=True,
    max_attempts=4,
    interval_seconds=1.0,
    backoff_rate=2.0,
    should_retry=_is_transient,
)
def match_step(exchange_id: str) -> dict[str, Any]:
    return _as_dict(service.match(_current(), exchange_id, _request(exchange_id)))


@DBOS.step(
    retries_allowed=True,
    max_attempts=4,
    interval_seconds=1.0,
    backoff_rate=2.0,
    should_retry=_is_transient,
)
def retrieve_step(exchange_id: str) -> dict[str, Any]:
    return _as_dict(service.retrieve(_current(), exchange_id, _request(exchange_id)))


@DBOS.step()
def normalize_step(exchange_id: str) -> dict[str, Any]:
    return _as_dict(service.normalize(_current(), exchange_id, _request(exchange_id)))


@DBOS.step()
def fail_step(exchange_id: str, code: str, text: str) -> dict[str, Any]:
    return _as_dict(service.fail(_current(), exchange_id, code, text))


_STEPS = (prepare_step, match_step, retrieve_step, normalize_step)


@DBOS.workflow()
def exchange_workflow(exchange_id: str) -> str:
    bind_context(exchange_id=exchange_id)
    outcome: dict[str, Any] = {"state": "submitted", "done": False}
    for step in _STEPS:
        try:
            outcome = step(exchange_id)
        except Exception as exc:  # noqa: BLE001 - every failure must end the exchange visibly
            spent = isinstance(exc, dbos_error.DBOSMaxStepRetriesExceeded)
            code = "partner-unavailable" if spent or _is_transient(exc) else "internal-error"
            logger.warning(
                "exchange step failed",
                extra={
                    "exchange_id": exchange_id,
                    "step": step.__name__,
                    "error_type": type(exc).__name__,
                },
            )
            return str(fail_step(exchange_id, code, _safe_text(exc, code))["state"])
        if outcome["done"]:
            break
    return str(outcome["state"])


def _safe_text(error: Exception, code: str) -> str:
    if code == "partner-unavailable":
        return "the partner stayed unavailable after retries"
    return f"internal error ({type(error).__name__}); see the server log"


def start_exchange(exchange_id: str) -> None:
    """Start the workflow; the exchange id is the workflow id, so a second start is a no-op."""
    with SetWorkflowID(exchange_id):
        DBOS.start_workflow(exchange_workflow, exchange_id)
