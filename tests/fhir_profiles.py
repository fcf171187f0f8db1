"""Checking a resource against a profile's differential, for conformance tests.

The extracts under ``tests/data/fhir-profiles`` come from the FHIR packages of the
published guides (see its README). This checks what those differentials say that a
shape can get wrong: cardinality (also of slices, told apart by their fixed or pattern
values, and closed slicing), fixed and pattern values, and the profiles of contained
resources (``Parameters.parameter.resource``). It is not a full validator: invariants,
bindings and the base resource's own rules are not checked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "fhir-profiles"


def load(package: str, name: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((DATA / package / f"{name}.json").read_text())
    return document


def structure(package: str, profile: str) -> dict[str, Any]:
    """The StructureDefinition named by ``profile`` (a canonical, version ignored) in
    ``package``, or in US Core 3.1.1 (which HRex 1.0.0 builds on)."""
    url = profile.partition("|")[0]
    for directory in (DATA / package, DATA / "us-core-3.1.1"):
        for path in directory.glob("StructureDefinition-*.json"):
            document: dict[str, Any] = json.loads(path.read_text())
            if document["url"] == url:
                return document
    raise LookupError(f"{url} is not among the extracts of {package}")


def violations(resource: dict[str, Any], definition: dict[str, Any], package: str) -> list[str]:
    """What in ``resource`` the differential of ``definition`` forbids, one line each."""
    elements = definition["differential"]["element"]
    by_id = {element["id"]: element for element in elements}
    found: list[str] = []
    for element in elements[1:]:
        steps = _steps(element["id"])
        parents = _select([resource], steps[:-1], by_id, element["id"])
        name, slice_name = steps[-1]
        for parent in parents:
            children = list(_children(parent, name, slice_name, by_id, element["id"]))
            low, high = element.get("min"), element.get("max")
            if low is not None and len(children) < low:
                found.append(f"{element['id']}: {len(children)} found, at least {low} required")
            if high not in (None, "*") and len(children) > int(high):
                found.append(f"{element['id']}: {len(children)} found, at most {high} allowed")
            if element.get("slicing", {}).get("rules") == "closed":
                for child in children:
                    if not _in_some_slice(child, element["id"], by_id):
                        found.append(f"{element['id']}: {_brief(child)} is in no slice (closed)")
            for child in children:
                found += _value_problems(child, element, package)
    return found


def _value_problems(value: Any, element: dict[str, Any], package: str) -> list[str]:
    problems = []
    for key, expected in element.items():
        if key.startswith("fixed") and value != expected:
            problems.append(f"{element['id']}: {value!r} is not the fixed {expected!r}")
        if key.startswith("pattern") and not _matches(value, expected):
            problems.append(f"{element['id']}: {_brief(value)} does not carry {expected!r}")
    if element["path"].endswith(".resource") and isinstance(value, dict):
        for kind in element.get("type", []):
            for profile in kind.get("profile", []):
                inner = structure(package, profile)
                problems += [f"{element['id']} → {p}" for p in violations(value, inner, package)]
    return problems


def _steps(element_id: str) -> list[tuple[str, str | None]]:
    """``Parameters.parameter:memberPatient.resource`` → [(parameter, memberPatient),
    (resource, None)]; the path's first part is the resource type."""
    steps: list[tuple[str, str | None]] = []
    for part in _split(element_id)[1:]:
        name, _, slice_name = part.partition(":")
        steps.append((name, slice_name or None))
    return steps


def _split(element_id: str) -> list[str]:
    # A slice name may hold dots only in type slices (value[x]:valueIdentifier has none).
    return element_id.split(".")


def _select(
    nodes: list[Any], steps: list[tuple[str, str | None]], by_id: dict[str, Any], element_id: str
) -> list[Any]:
    prefix = _split(element_id)[0]
    for name, slice_name in steps:
        prefix = f"{prefix}.{name}" + (f":{slice_name}" if slice_name else "")
        nodes = [c for node in nodes for c in _children(node, name, slice_name, by_id, prefix)]
    return nodes


def _children(
    node: Any, name: str, slice_name: str | None, by_id: dict[str, Any], element_id: str
) -> Iterator[Any]:
    if not isinstance(node, dict):
        return
    if name.endswith("[x]"):
        stem = name[:-3]
        keys = [k for k in node if k.startswith(stem) and k[len(stem) :][:1].isupper()]
        if slice_name is not None:  # a type slice names the one key it is about
            keys = [k for k in keys if k == slice_name]
    else:
        keys = [name] if name in node else []
    for key in keys:
        values = node[key] if isinstance(node[key], list) else [node[key]]
        for value in values:
            # A named slice holds the items that carry its values (element_id is its id).
            if slice_name is None or name.endswith("[x]") or _in_slice(value, element_id, by_id):
                yield value


def _in_slice(value: Any, slice_id: str, by_id: dict[str, Any]) -> bool:
    """Whether ``value`` belongs to the slice: it carries the slice's fixed and pattern
    values and those of the slice's direct children (an extension slice: its url)."""
    extension_urls = [
        profile
        for kind in by_id.get(slice_id, {}).get("type", [])
        if kind.get("code") == "Extension"
        for profile in kind.get("profile", [])
    ]
    if extension_urls:  # an extension slice is told apart by its url (its profile's)
        return isinstance(value, dict) and value.get("url") in extension_urls
    rules = [by_id[slice_id]] if slice_id in by_id else []
    rules += [
        e
        for i, e in by_id.items()
        if i.startswith(f"{slice_id}.") and "." not in i[len(slice_id) + 1 :]
    ]
    for rule in rules:
        target = (
            value if rule["id"] == slice_id else (value or {}).get(rule["id"].rsplit(".", 1)[1])
        )
        for key, expected in rule.items():
            if key.startswith("fixed") and target != expected:
                return False
            if key.startswith("pattern") and not _matches(target, expected):
                return False
    return True


def _in_some_slice(value: Any, element_id: str, by_id: dict[str, Any]) -> bool:
    slices = [
        i for i in by_id if i.startswith(f"{element_id}:") and "." not in i[len(element_id) :]
    ]
    return any(_in_slice(value, slice_id, by_id) for slice_id in slices)


def _matches(value: Any, pattern: Any) -> bool:
    if isinstance(pattern, dict):
        return isinstance(value, dict) and all(
            _matches(value.get(k), v) for k, v in pattern.items()
        )
    if isinstance(pattern, list):
        items = value if isinstance(value, list) else []
        return all(any(_matches(item, p) for item in items) for p in pattern)
    return bool(value == pattern)


def _brief(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name") or value.get("resourceType") or sorted(value))
    return repr(value)
