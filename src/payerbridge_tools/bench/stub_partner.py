"""A fast stand-in old payer for ``bench exchanges``: canned $member-match and $everything.

It answers from memory, so a benchmark measures our orchestration, not a partner."""

from __future__ import annotations

import sys
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from payerbridge.fhir.member_match import build_member_match_response

FHIR = "application/fhir+json"
MATCH = orjson.dumps(
    build_member_match_response(
        identifier_system="urn:bench:umb", identifier_value="U1", member_id="m1"
    )
)


def _bundle(observations: int) -> bytes:
    patient = {"resourceType": "Patient", "id": "m1", "name": [{"family": "Bench"}]}
    entries: list[dict[str, Any]] = [{"resource": patient}]
    for i in range(observations):
        entries.append(
            {
                "resource": {
                    "resourceType": "Observation",
                    "id": f"o{i}",
                    "status": "final",
                    "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
                    "subject": {"reference": "Patient/m1"},
                    "valueQuantity": {"value": 60 + i % 30, "unit": "/min"},
                }
            }
        )
    return orjson.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})


EVERYTHING = _bundle(33)  # about the size of a sandbox member's history


async def member_match(_request: Request) -> Response:
    return Response(MATCH, media_type=FHIR)


async def everything(_request: Request) -> Response:
    return Response(EVERYTHING, media_type=FHIR)


async def health(_request: Request) -> Response:
    return Response("ok")


app = Starlette(
    routes=[
        # /fhir/<n>/...: the same answers for every partner the benchmark registers
        Route("/fhir/{partner}/Patient/$member-match", member_match, methods=["POST"]),
        Route("/fhir/{partner}/Patient/{member}/$everything", everything),
        Route("/healthz", health),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
