"""The HTTP edge: FastAPI app, FHIR routes under /fhir, the exchange API under /exchanges."""

from payerbridge.api.app import create_app

__all__ = ["create_app"]
