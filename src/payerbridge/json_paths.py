"""Walking FHIR JSON (pure): the values at a dotted element path, and the Codings among
them. Segmentation and the searches both look into resources this way."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

__all__ = ["ElementPath", "codings", "element_path", "values_at"]


class ElementPath:
    """A dotted element path split once, whose values are read level by level rather
    than by a recursive generator: segmentation and the window read the same few paths
    of every resource."""

    __slots__ = ("steps", "_rest")

    def __init__(self, steps: tuple[str, ...]) -> None:
        self.steps = steps
        self._rest = steps[1:]

    def __repr__(self) -> str:
        return f"ElementPath({'.'.join(self.steps)!r})"

    def values(self, node: Any) -> list[Any]:
        """What ``values_at`` yields, in the same order, as a list."""
        level: list[Any] = []
        steps = self.steps
        if type(node) is dict and steps:
            # A resource: its first element read directly, and most often absent.
            first = node.get(steps[0])
            if first is None:
                return level
            _extend_flat(level, first)
            steps = self._rest
        else:
            _extend_flat(level, node)
        for step in steps:
            if not level:
                break
            found: list[Any] = []
            for item in level:
                kind = type(item)
                if kind is not dict and (kind is str or not isinstance(item, Mapping)):
                    continue
                value = item.get(step)
                if value is None:
                    continue
                if isinstance(value, list):
                    _extend_flat(found, value)
                else:
                    found.append(value)
            level = found
        return level


def _extend_flat(out: list[Any], value: Any) -> None:
    """Append ``value``, or its items with nested lists flattened in order."""
    if not isinstance(value, list):
        out.append(value)
        return
    for item in value:
        if isinstance(item, list):
            _extend_flat(out, item)
        else:
            out.append(item)


# Paths come from code and configuration, so few; bounded all the same.
_PATHS: dict[str | tuple[str, ...], ElementPath] = {}
_MOST_PATHS = 4096


def element_path(path: str | tuple[str, ...]) -> ElementPath:
    """The path ``"item.productOrService"`` (or its steps), split once and kept."""
    found = _PATHS.get(path)
    if found is None:
        found = ElementPath(tuple(path.split(".")) if isinstance(path, str) else path)
        if len(_PATHS) >= _MOST_PATHS:
            _PATHS.clear()
        _PATHS[path] = found
    return found


def values_at(node: Any, path: str | tuple[str, ...]) -> Iterator[Any]:
    """Every value at a dotted path (``"item.productOrService"``), lists flattened at
    each step."""
    yield from element_path(path).values(node)


def codings(values: Iterable[Any]) -> Iterator[Mapping[str, Any]]:
    """The Codings in CodeableConcepts or bare Codings."""
    # Exact type checks first: segmentation reads the codings of every exported resource.
    for value in values:
        if type(value) is not dict and not isinstance(value, Mapping):
            continue
        coding = value.get("coding")
        if isinstance(coding, list):
            for item in coding:
                if type(item) is dict or isinstance(item, Mapping):
                    yield item
        elif "code" in value:
            yield value
