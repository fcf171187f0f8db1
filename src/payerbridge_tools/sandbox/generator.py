"""Write a sandbox network to disk: the only I/O of the sandbox.

``out_dir`` receives one NDJSON file per old payer (``payer-a.ndjson``, one
compact resource per line), ``switchers.json`` (members moving to the platform,
with the request each one will make) and ``network.json``, written last so its
presence means the set is complete. Each file is written to a temporary name
and renamed into place. The same arguments give byte-identical files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import orjson

from payerbridge_tools.population import (
    Network,
    PayerProfile,
    Resource,
    build_network,
    generate_payer_population,
    sample_switchers,
)

__all__ = ["NetworkFiles", "PayerFile", "write_network"]

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 1000


@dataclass(frozen=True)
class PayerFile:
    """One old payer's NDJSON file and how many resources it holds."""

    slug: str
    path: Path
    resources: int


@dataclass(frozen=True)
class NetworkFiles:
    """Where :func:`write_network` put things."""

    network: Path
    switchers: Path
    payers: tuple[PayerFile, ...]

    @property
    def resources(self) -> int:
        return sum(payer.resources for payer in self.payers)


class _Progress:
    """Running total, reported at most every ``PROGRESS_EVERY`` resources and once at the end."""

    def __init__(self, callback: Callable[[int], None] | None) -> None:
        self.callback = callback
        self.total = 0
        self.reported = 0

    def add(self, count: int) -> None:
        self.total += count
        if self.callback and self.total - self.reported >= PROGRESS_EVERY:
            self.reported = self.total
            self.callback(self.total)

    def finish(self) -> None:
        if self.callback and self.total != self.reported:
            self.reported = self.total
            self.callback(self.total)


def write_network(
    out_dir: Path,
    payer_count: int,
    members: int,
    seed: int,
    as_of: date,
    switchers: int = 5,
    progress: Callable[[int], None] | None = None,
    fhir_payers: int | None = None,
) -> NetworkFiles:
    """Generate every old payer's population and the switchers, and write them under ``out_dir``.

    ``progress`` gets the number of resources written so far (all files together).
    ``fhir_payers``: only the first so many payers get an NDJSON file (``payers`` in
    ``network.json``); the others (``source_payers``) hold their history in their own
    systems' files or servers, which ``source_partners`` writes or serves.
    """
    network = build_network(payer_count)
    out_dir.mkdir(parents=True, exist_ok=True)
    counter = _Progress(progress)
    files: list[PayerFile] = []
    loaded = network.payers[: payer_count if fhir_payers is None else fhir_payers]
    for payer in loaded:
        path = out_dir / f"{payer.slug}.ndjson"
        resources = generate_payer_population(network, payer, members, seed, as_of)
        count = _write_ndjson(path, resources, counter)
        files.append(PayerFile(slug=payer.slug, path=path, resources=count))
        logger.info("sandbox payer written", extra={"payer": payer.slug, "resources": count})
    counter.finish()
    moving = [
        switcher
        for payer in loaded
        for switcher in sample_switchers(network, payer, members, seed, as_of, switchers)
    ]
    switchers_path = _write_json(out_dir / "switchers.json", moving)
    manifest = _manifest(network, members, seed, as_of, len(loaded))
    network_path = _write_json(out_dir / "network.json", manifest)
    return NetworkFiles(network=network_path, switchers=switchers_path, payers=tuple(files))


def _manifest(
    network: Network, members: int, seed: int, as_of: date, loaded: int
) -> dict[str, object]:
    platform = network.platform
    manifest: dict[str, object] = {
        "seed": seed,
        "as_of": as_of.isoformat(),
        "members_per_payer": members,
        "platform": {"slug": platform.slug, "name": platform.name, "npi": platform.npi},
        "payers": [_payer_entry(payer) for payer in network.payers[:loaded]],
    }
    if loaded < len(network.payers):
        manifest["network_payers"] = len(network.payers)
        manifest["source_payers"] = [
            {k: v for k, v in _payer_entry(payer).items() if k != "file"}
            for payer in network.payers[loaded:]
        ]
    return manifest


def _payer_entry(payer: PayerProfile) -> dict[str, str]:
    return {
        "slug": payer.slug,
        "name": payer.name,
        "npi": payer.npi,
        "file": f"{payer.slug}.ndjson",
    }


def _write_ndjson(path: Path, resources: Iterable[Resource], counter: _Progress) -> int:
    temporary = path.with_name(path.name + ".tmp")
    count = 0
    batch: list[bytes] = []
    with temporary.open("wb") as handle:
        for resource in resources:
            batch.append(orjson.dumps(resource, option=orjson.OPT_APPEND_NEWLINE))
            if len(batch) == PROGRESS_EVERY:
                handle.write(b"".join(batch))
                count += len(batch)
                counter.add(len(batch))
                batch.clear()
        handle.write(b"".join(batch))
        count += len(batch)
        counter.add(len(batch))
    temporary.replace(path)
    return count


def _write_json(path: Path, document: object) -> Path:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_bytes(
        orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    )
    temporary.replace(path)
    return path
