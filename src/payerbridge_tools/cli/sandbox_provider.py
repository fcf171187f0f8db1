"""``make run``'s Provider Access (issue 72, ADR 0059): at the first sandbox old payer,
attribution is derived from its own claims, the provider attributed the most members
today gets a client, one of its members opts out of it, and the provider exports its
Group through the HTTP API, as a provider's system would."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from payerbridge_tools.cli.sandbox_instances import Instance, register_client

__all__ = ["ProviderRun", "print_provider_run", "run_provider_access"]

_CLIENT = "sandbox-provider"
_SCOPE = "system/Group.r system/*.rs"
_EXPORT = "hl7.fhir.us.davinci-pdex%23provider-download"
_LOOK_BACK_DAYS = 730


@dataclass(frozen=True)
class ProviderRun:
    """What the sandbox provider was attributed, and what its export gave."""

    payer: str
    npi: str
    attributed: int  # members attributed today
    left_out: str  # the member who opted out of it
    exported: int  # members whose Patient came
    resources: dict[str, int]  # lines by type


def _prepare(partner: Instance, key_set: dict[str, Any]) -> tuple[str, list[str], str]:
    """Attribution derived, the provider chosen and registered, one member opted out;
    the provider's NPI, its members today and its token."""
    from payerbridge.bootstrap import build_platform, utcnow
    from payerbridge.config import load_settings
    from payerbridge.provider_access.model import (
        Choice,
        OptOutReason,
        OptOutScope,
        derive_attributions,
    )
    from payerbridge.provider_access.service import (
        DeriveAttribution,
        RecordChoice,
        derive_attribution,
        record_choice,
    )
    from payerbridge.provider_access.treatment import services_shown
    from payerbridge.types import ClientId

    settings = load_settings(data_dir=partner.data_dir, database_url=None)
    platform = build_platform(settings)
    try:
        uow = platform.units.provider_access()
        derive_attribution(DeriveAttribution(_LOOK_BACK_DAYS, "sandbox"), uow)
        today = uow.calendar.local_day(utcnow())
        derived = derive_attributions(services_shown(uow.records), look_back_days=_LOOK_BACK_DAYS)
        holding = [a for a in derived if a.holds_on(today)]
        npi = Counter(a.provider_npi for a in holding).most_common(1)[0][0]
        members = sorted({a.member_id for a in holding if a.provider_npi == npi})
        choice = RecordChoice(
            members[0],
            Choice.OPT_OUT,
            OptOutScope.PROVIDER_SPECIFIC,
            "sandbox",
            npi,
            OptOutReason.MEMBER_CHOICE,
        )
        record_choice(choice, uow)
    finally:
        platform.close()
    register_client(partner.data_dir, _CLIENT, ("Sandbox Clinic", npi), _SCOPE, key_set)
    platform = build_platform(settings)
    try:
        token = platform.tokens.issue(ClientId(_CLIENT), _SCOPE, now=utcnow(), actor="sandbox")
    finally:
        platform.close()
    return npi, list(members), token.access_token


def _export(client: httpx.Client, npi: str) -> dict[str, list[dict[str, Any]]]:
    """The provider's Group exported, every file read."""
    kicked = client.post(
        f"/fhir/Group/provider-{npi}/$davinci-data-export?exportType={_EXPORT}",
        headers={"Prefer": "respond-async"},
    )
    if kicked.status_code != 202:
        raise RuntimeError(f"provider export refused: {kicked.status_code} {kicked.text[:300]}")
    deadline = time.monotonic() + 120
    while True:
        polled = client.get(kicked.headers["Content-Location"])
        if polled.status_code == 200:
            break
        if polled.status_code != 202 or time.monotonic() > deadline:
            raise RuntimeError(f"provider export did not complete: {polled.status_code}")
        time.sleep(0.3)
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in polled.json()["output"]:
        body = client.get(entry["url"], headers={"Accept": "application/fhir+ndjson"}).content
        found[entry["type"]] = [orjson.loads(line) for line in body.splitlines() if line]
    return found


def run_provider_access(partner: Instance, key_set: dict[str, Any]) -> ProviderRun:
    """The sandbox provider's run at ``partner`` (see the module)."""
    npi, members, token = _prepare(partner, key_set)
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=partner.base_url, timeout=30, headers=headers) as client:
        found = _export(client, npi)
    patients = {r["id"] for r in found.get("Patient", [])}
    if members[0] in patients or not patients <= set(members):
        raise RuntimeError("the provider export gave a member it may not have")
    return ProviderRun(
        partner.name,
        npi,
        len(members),
        members[0],
        len(patients & set(members)),
        {kind: len(lines) for kind, lines in sorted(found.items())},
    )


def print_provider_run(run: ProviderRun, out: Any) -> None:
    out.print(
        f"provider access at {run.payer}: provider {run.npi} attributed {run.attributed} "
        f"members by the payer's claims; its export gave {run.exported} members' records "
        f"({', '.join(f'{kind} {n}' for kind, n in run.resources.items())}); member "
        f"{run.left_out} opted out of it and was left out"
    )
