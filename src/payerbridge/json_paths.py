"""Walking FHIR JSON (pure): the values at a dotted element path, and the Codings among
them. Segmentation and the searches both look into resources this way."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["codings", "values_at"]


def values_at(node: Any, path: str | tuple[str, ...]) -> Iterator[Any]:
    """Every value at a dotted path (``"item.productOrService"``), lists flattened at
    each step."""
    steps = tuple(path.split(".")) if isinstance(path, str) else path
    if isinstance(node, list):
        for item in node:
            yield from values_at(item, steps)
    elif not steps:
        yield node
    elif isinstance(node, Mapping) and node.get(steps[0]) is not None:
        yield from values_at(node[steps[0]], steps[1:])


def codings(values: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    """The Codings in CodeableConcepts or bare Codings."""
    for value in values:
        if not isinstance(value, Mapping):
            continue
        if isinstance(value.get("coding"), list):
            yield from (c for c in value["coding"] if isinstance(c, Mapping))
        elif "code" in value:
            yield value
