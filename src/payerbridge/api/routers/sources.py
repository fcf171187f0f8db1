"""The plan's sources for operators (ADR 0031): which there are, a replicated source's
files pushed over HTTP (as ``payerbridge sources ingest`` gives them) and the files it
has been given. Operators only; every file given is audited."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from payerbridge.api.deps import OperatorDep, current_platform
from payerbridge.api.responses import JsonResponse
from payerbridge.api.units import SourcesUnitDep
from payerbridge.backends.ingestion import FileReport
from payerbridge.backends.model import FileBytes
from payerbridge.backends.replicated import IngestFile, ingest_file
from payerbridge.backends.sources import LiveSourceSpec
from payerbridge.backends.unit import SourcesUnit
from payerbridge.errors import Issue, NotFound

__all__ = ["router"]

router = APIRouter(prefix="/sources", default_response_class=JsonResponse, tags=["sources"])


@router.get("")
def list_sources(uow: SourcesUnitDep, _operator: OperatorDep) -> dict[str, Any]:
    """Operators only: each source with its mode, mapping version, the format it reads
    and the PDex source format it records (no credentials)."""
    sources = uow.sources.sources
    items: list[dict[str, Any]] = [{"id": "store", "mode": "built-in"}]
    for spec in sources:
        mapping = sources.library.get(spec.mapping_ref)
        item: dict[str, Any] = {
            "id": spec.id,
            "mode": spec.mode,
            "mapping": str(mapping.ref),
            "reads": mapping.input,
            "source_format": mapping.source_format,
            "gives": sorted(mapping.produces),
        }
        if isinstance(spec, LiveSourceSpec):
            item |= {
                "base_url": spec.base_url,
                "types": spec.types,
                "budget_seconds": spec.budget_seconds,
            }
        items.append(item)
    return {"sources": items}


@router.post("/{source_id}/files", status_code=201)
async def push_file(
    source_id: str,
    request: Request,
    response: Response,
    operator: OperatorDep,
    name: Annotated[
        str, Query(min_length=1, max_length=300, description="The file's name, for its reports.")
    ],
) -> dict[str, Any]:
    """Operators only: one file of a replicated source, as the body (any content type:
    X12, CSV, fixed-width, NDJSON), mapped and kept in one transaction. 201 with what it
    gave and every record it could not read or map (by line or segment); 200 when the
    same file was given before (nothing changes)."""
    uow = current_platform(request).units.sources()  # the app's, as every handler's
    _known(uow, source_id)
    # Held as bytes: PAYERBRIDGE_MAX_REQUEST_BYTES bounds it (5 MB unless raised); a
    # larger file goes through ``payerbridge sources ingest``, read in pieces.
    body = FileBytes(await request.body())
    report = await _run(uow, IngestFile(source_id, name, body, operator.client_id))
    if report.duplicate:
        response.status_code = 200
    return report.to_json()


@router.get("/{source_id}/files")
def list_files(source_id: str, uow: SourcesUnitDep, _operator: OperatorDep) -> dict[str, Any]:
    """Operators only: the files a replicated source has been given, with their reports."""
    _known(uow, source_id)
    uow.sources.sources.replicated(source_id)
    return {"files": uow.sources.files.files(source_id)}


def _known(uow: SourcesUnit, source_id: str) -> None:
    if source_id not in uow.sources.sources.specs:
        text = f"no source '{source_id[:40]}' in the sources file"
        raise NotFound(text, issues=[Issue(text, "source_id", "not-found")])


async def _run(uow: SourcesUnit, command: IngestFile) -> FileReport:
    """The ingestion off the event loop: it reads, maps and writes the whole file."""
    report: FileReport = await run_in_threadpool(ingest_file, command, uow)
    return report
