"""The sandbox's directory (ADR 0062): an NDH-style Bundle of the sandbox's FHIR partner
payers (``data/sandbox-directory.json``: ``payer-a`` … ``payer-c`` as
``build_network`` names them, a patient-access endpoint each and a provider beside them,
which the import passes over), their addresses templated as ``{payer-a}``; and the step a
demo takes to import it and approve what it holds, as an operator would."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

__all__ = ["SANDBOX_DIRECTORY", "import_sandbox_directory", "sandbox_directory"]

SANDBOX_DIRECTORY = Path(__file__).parent / "data" / "sandbox-directory.json"
_SLOT = re.compile(r"\{(payer-[a-z]+)\}")


def sandbox_directory(bases: Mapping[str, str]) -> dict[str, Any]:
    """The sandbox directory with each ``{slug}`` replaced by the base URL of that
    partner's server (``http://127.0.0.1:8101``): the partners given, and only them (a
    network of fewer payers runs fewer); KeyError naming a slug the directory lacks."""
    text = SANDBOX_DIRECTORY.read_text(encoding="utf-8")
    unknown = set(bases) - set(_SLOT.findall(text))
    if unknown:
        raise KeyError(f"the sandbox directory has no {', '.join(sorted(unknown))}")
    filled = _SLOT.sub(lambda slot: bases.get(slot.group(1), slot.group(0)).rstrip("/"), text)
    document: dict[str, Any] = orjson.loads(filled)
    document["entry"] = [e for e in document["entry"] if _running(e["resource"], bases)]
    return document


def _running(resource: Mapping[str, Any], bases: Mapping[str, str]) -> bool:
    """Whether an entry is of a partner given (a slot left unfilled, or a payer's id not
    given, is not); entries of no partner (the clinic) stay."""
    if _SLOT.search(str(resource.get("address", ""))):
        return False
    ids = [i["value"] for i in resource.get("identifier", ()) if i["system"].endswith("partner-id")]
    return all(i in bases for i in ids)


def import_sandbox_directory(
    data_dir: Path, bases: Mapping[str, str], client_id: str | None
) -> list[dict[str, Any]]:
    """Import the sandbox directory into the platform of ``data_dir`` and approve every
    proposal it holds, with ``client_id`` as our client id at each partner (SMART; None:
    they ask no token), as the ``sandbox`` operator; what happened to each organization
    (the import's results, then each approval's)."""
    from payerbridge.bootstrap import build_platform
    from payerbridge.clock import utcnow
    from payerbridge.config import load_settings
    from payerbridge.routing.directory_import import ImportDirectory, import_directory
    from payerbridge.routing.directory_proposals import SettleProposal, approve_proposal

    platform = build_platform(load_settings(data_dir=data_dir))
    try:
        command = ImportDirectory(
            sandbox_directory(bases), SANDBOX_DIRECTORY.name, utcnow(), "sandbox"
        )
        done = import_directory(command, platform.units.directory())
        said = [result.to_json() for result in done.organizations]
        for result in done.organizations:
            if result.proposal_id is None or result.outcome == "skipped":
                continue
            approval = SettleProposal(
                result.proposal_id, "sandbox", client_id=client_id, note="the sandbox's own"
            )
            enrolled = approve_proposal(approval, platform.units.directory())
            said.append({"partner_id": enrolled.partner.id, "outcome": "approved"})
        return said
    finally:
        platform.close()
