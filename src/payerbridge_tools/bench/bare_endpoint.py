"""The reference point for ``$member-match`` throughput: a bare FastAPI endpoint.

It parses the request body as JSON and answers a fixed Parameters, with nothing else:
no authentication, no database, no matching. Run by ``bench identity`` under the same
uvicorn settings as ``payerbridge serve`` and driven by the same load generator, it
shows what one server process can reach at all on the machine of the run.
"""

from __future__ import annotations

import sys

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from payerbridge.fhir.member_match import build_member_match_response

_ANSWER = orjson.dumps(
    build_member_match_response(
        identifier_system="urn:bench:umb", identifier_value="U1", member_id="m1"
    )
)

app = FastAPI()


@app.post("/fhir/Patient/$member-match")
async def member_match(request: Request) -> Response:
    orjson.loads(await request.body())
    return Response(_ANSWER, media_type="application/fhir+json")


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
