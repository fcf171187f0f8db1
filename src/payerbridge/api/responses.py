"""Response classes: FHIR JSON (``application/fhir+json``) and plain JSON, both via orjson."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

__all__ = ["FHIR_JSON", "FhirResponse", "JsonResponse"]

FHIR_JSON = "application/fhir+json"


class JsonResponse(JSONResponse):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class FhirResponse(JsonResponse):
    media_type = "application/fhir+json"
