"""The counts pyx12's map walker keeps (how often each loop and segment was seen under
the loop it is in), kept by path text (pure).

pyx12's ``NodeCounter`` keys its counts by ``X12Path`` objects, whose hash formats the
path anew at each look-up, and starts each loop again by formatting every path it holds:
most of the walker's time. ``PathCounts`` gives the walker the same counts keyed by the
path's formatted text (``X12Path.format()``, which is how ``NodeCounter`` hashes it),
formatted once per path: a map node's path is made once with the map and never changed.
A loop started again forgets the paths under it as ``NodeCounter.reset_to_node`` does:
those whose text continues the loop's by a ``/`` (its ``is_child_path``).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from pyx12.nodeCounter import NodeCounter  # type: ignore[import-untyped]
from pyx12.path import X12Path  # type: ignore[import-untyped]

__all__ = ["PathCounts"]

_MAX_PATHS = 10_000  # formatted paths remembered (a map has a few thousand nodes)


class PathCounts(NodeCounter):  # type: ignore[misc]
    """``NodeCounter``'s counts, by path text."""

    def __init__(self) -> None:
        super().__init__()
        self._counts: dict[str, int] = {}
        self._texts: dict[int, tuple[Any, str]] = {}  # id -> (the path, held; its text)
        self._parsed: dict[str, str] = {}  # a path given as text -> its X12Path's text

    def _text(self, xpath: str | Any) -> str:
        if isinstance(xpath, str):
            text = self._parsed.get(xpath)
            if text is None:
                if len(self._parsed) >= _MAX_PATHS:
                    self._parsed.clear()
                text = self._parsed[xpath] = X12Path(xpath).format()
            return text
        held = self._texts.get(id(xpath))
        if held is None or held[0] is not xpath:
            if len(self._texts) >= _MAX_PATHS:
                self._texts.clear()
            held = self._texts[id(xpath)] = (xpath, xpath.format())
        return held[1]

    def reset_to_node(self, xpath: str | Any) -> None:
        under = self._text(xpath) + "/"
        for key in [k for k in self._counts if k.startswith(under)]:
            del self._counts[key]

    def increment(self, xpath: str | Any) -> None:
        key = self._text(xpath)
        self._counts[key] = self._counts.get(key, 0) + 1

    def setCount(self, xpath: str | Any, ct: int) -> None:  # noqa: N802 - pyx12's name
        self._counts[self._text(xpath)] = ct

    def get_count(self, xpath: str | Any) -> int:
        return self._counts.get(self._text(xpath), 0)

    def getState(self) -> OrderedDict[Any, int]:  # noqa: N802 - pyx12's name
        return OrderedDict((X12Path(key), count) for key, count in self._counts.items())
