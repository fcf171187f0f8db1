"""The FHIR profile packages that ship with the product (``fhir/packages/*.json.gz``),
read once.

Each file is the extract of one FHIR package that ``payerbridge_tools.profile_packages``
writes (its docstring says how to regenerate them): the StructureDefinitions' snapshot
elements, the ValueSets' ``compose`` and the CodeSystems' codes. Nothing is fetched at
run time.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["Package", "SHIPPED_PACKAGES", "shipped_packages"]


@dataclass(frozen=True)
class Package:
    name: str  # the FHIR package id, e.g. hl7.fhir.us.carin-bb
    version: str
    profiles: tuple[dict[str, Any], ...]  # StructureDefinitions: url, version, type, element
    value_sets: tuple[dict[str, Any], ...]
    code_systems: tuple[dict[str, Any], ...]

    @property
    def label(self) -> str:
        return f"{self.name}#{self.version}"


# The order they are read in: a canonical that several hold is taken from the later one.
SHIPPED_PACKAGES = (
    "us-core-3.1.1",
    "us-core-6.1.0",
    "us-core-7.0.0",
    "carin-bb-2.0.0",
    "carin-bb-2.2.0",
    "davinci-pdex-2.0.0",
    "davinci-pdex-2.1.0",
    "davinci-pdex-2.2.0",
)


@cache
def shipped_packages() -> tuple[Package, ...]:
    """The packages shipped with the product, in ``SHIPPED_PACKAGES`` order (read once)."""
    folder = resources.files("payerbridge.fhir").joinpath("packages")
    packages = []
    for name in SHIPPED_PACKAGES:
        document = json.loads(gzip.decompress(folder.joinpath(f"{name}.json.gz").read_bytes()))
        packages.append(
            Package(
                name=document["name"],
                version=document["version"],
                profiles=tuple(document["profiles"]),
                value_sets=tuple(document["valueSets"]),
                code_systems=tuple(document["codeSystems"]),
            )
        )
    return tuple(packages)
