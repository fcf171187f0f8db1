"""The profile packages the product ships, extracted from the published FHIR packages.

``payerbridge.fhir.profiles`` checks every produced resource against the profile it
claims, from the packages under ``src/payerbridge/fhir/packages/``: one gzip JSON file per
FHIR package, with only what the checker reads (each StructureDefinition's snapshot
elements, trimmed to cardinality, types, fixed and pattern values, required bindings,
error invariants and slicing; each ValueSet's ``compose``; each CodeSystem's codes). The
extract is deterministic (sorted, no timestamps), so regenerating it from the same
packages changes nothing. Regenerate with::

    python -m payerbridge_tools.profile_packages /path/to/fhir-packages

(``../shared/fhir-packages`` on the development machine; its README says which are
rebuilds). ``--examples DIR`` also writes each package's own examples, with the profile
the guide lists each under where the example claims none, for the checker's tests
(``tests/data/profile-examples``).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from payerbridge.fhir.profile_packages import SHIPPED_PACKAGES

__all__ = ["PACKAGES", "extract", "main"]

# The packages the product ships, by file name, in the order it reads them: US Core
# 3.1.1 and 6.1.0 (and 7.0.0, which CARIN BB 2.2.0 and PDex 2.2 build on), CARIN BB
# 2.0.0 and 2.2.0 (its non-financial Basis EOB profiles), PDex 2.0.0, 2.1.0 and 2.2.0.
PACKAGES = SHIPPED_PACKAGES

PRODUCT_DIR = Path(__file__).resolve().parents[1] / "payerbridge" / "fhir" / "packages"

# Examples larger than this (US Core's Media-ekg-strip: half a megabyte of base64 signal)
# are left out of the tests' copy.
_LARGEST_EXAMPLE = 200_000

_ELEMENT_KEYS = ("id", "path", "sliceName", "min", "max")


def _json_files(archive: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with tarfile.open(archive, "r:gz") as tar:
        for member in sorted(tar.getmembers(), key=lambda m: m.name):
            if not member.isfile() or not member.name.endswith(".json"):
                continue
            handle = tar.extractfile(member)
            if handle is None:
                continue
            try:
                document = json.loads(handle.read())
            except ValueError:
                continue
            if isinstance(document, dict):
                yield member.name, document


def _element(element: dict[str, Any]) -> dict[str, Any]:
    """A snapshot element, trimmed to what the checker reads."""
    kept = {key: element[key] for key in _ELEMENT_KEYS if key in element}
    types = [
        {key: kind[key] for key in ("code", "profile") if key in kind}
        for kind in element.get("type", [])
    ]
    if types:
        kept["type"] = types
    for key, value in element.items():
        if key.startswith(("fixed", "pattern")):
            kept[key] = value
    binding = element.get("binding") or {}
    if binding.get("strength") == "required" and binding.get("valueSet"):
        kept["binding"] = {"strength": "required", "valueSet": binding["valueSet"]}
    constraints = [
        {key: c[key] for key in ("key", "expression", "human") if key in c}
        for c in element.get("constraint", [])
        if c.get("severity") == "error" and c.get("expression")
    ]
    if constraints:
        kept["constraint"] = constraints
    if "slicing" in element:
        kept["slicing"] = {
            key: element["slicing"][key]
            for key in ("discriminator", "rules", "ordered")
            if key in element["slicing"]
        }
    return kept


def _concepts(concepts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"code": c["code"], **({"concept": _concepts(c["concept"])} if c.get("concept") else {})}
        for c in concepts
        if "code" in c
    ]


def extract(archive: Path) -> dict[str, Any]:
    """What the checker needs of one FHIR package (a ``.tgz``)."""
    name = version = ""
    profiles: list[dict[str, Any]] = []
    value_sets: list[dict[str, Any]] = []
    code_systems: list[dict[str, Any]] = []
    for path, document in _json_files(archive):
        if path == "package/package.json":
            name, version = document["name"], document["version"]
        if "/example/" in path or "/other/" in path:
            continue
        kind = document.get("resourceType")
        if kind == "StructureDefinition" and "snapshot" in document:
            profiles.append(
                {
                    **{
                        k: document[k]
                        for k in ("url", "version", "name", "type", "kind")
                        if k in document
                    },
                    "element": [_element(e) for e in document["snapshot"]["element"]],
                }
            )
        elif kind == "ValueSet":
            value_sets.append(
                {k: document[k] for k in ("url", "version", "compose") if k in document}
            )
        elif kind == "CodeSystem":
            code_systems.append(
                {
                    **{k: document[k] for k in ("url", "version", "content") if k in document},
                    "concept": _concepts(document.get("concept", [])),
                }
            )
    by_url = sorted
    return {
        "name": name,
        "version": version,
        "profiles": by_url(profiles, key=lambda d: d["url"]),
        "valueSets": by_url(value_sets, key=lambda d: d["url"]),
        "codeSystems": by_url(code_systems, key=lambda d: d["url"]),
    }


def examples(archive: Path) -> list[dict[str, Any]]:
    """The package's own examples (but the few over ``_LARGEST_EXAMPLE`` characters), each
    with the profile the guide lists it under (``exampleCanonical``), if any."""
    listed: dict[str, str] = {}
    found: list[tuple[str, dict[str, Any]]] = []
    for path, document in _json_files(archive):
        if document.get("resourceType") == "ImplementationGuide":
            for entry in document.get("definition", {}).get("resource", []):
                reference = entry.get("reference", {}).get("reference")
                if reference and entry.get("exampleCanonical"):
                    listed[reference] = entry["exampleCanonical"]
        elif (
            "/example/" in path
            and "resourceType" in document
            and len(json.dumps(document)) <= _LARGEST_EXAMPLE
        ):
            found.append((path.rsplit("/", 1)[-1], document))
    return [
        {
            "file": file,
            "listedProfile": listed.get(f"{document['resourceType']}/{document.get('id')}"),
            "resource": document,
        }
        for file, document in found
    ]


def _write(path: Path, document: Any) -> None:
    text = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0, filename="") as handle:
        handle.write(text.encode())
    path.write_bytes(buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", type=Path, help="the directory of FHIR package .tgz files")
    parser.add_argument("--out", type=Path, default=PRODUCT_DIR)
    parser.add_argument("--examples", type=Path, default=None)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for package in PACKAGES:
        archive = args.packages / f"{package}.tgz"
        _write(args.out / f"{package}.json.gz", extract(archive))
        if args.examples is not None:
            args.examples.mkdir(parents=True, exist_ok=True)
            _write(args.examples / f"{package}.json.gz", examples(archive))


if __name__ == "__main__":
    main()
