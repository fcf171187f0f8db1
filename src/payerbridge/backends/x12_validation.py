"""pyx12's validation of a segment, answered once per distinct segment (pure).

``segment_if.is_valid_errors`` (usage, lengths, code lists, dates, syntax rules) reads
nothing but its map node, which validation never changes, and the segment: its
identifier, its separators and the values of its elements and components. Claims of one
file repeat most of their segments exactly (the billing provider's address, a service
line's number, common codes), so the findings of a segment are remembered under all of
what it is read from, and given again for a segment that is the same in all of it.
Remembered findings are pyx12's own error objects, read and never changed by the reader.
At most ``SIZE`` segments are remembered; when full, the memory starts again.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MEMO", "SIZE", "SegmentValidation", "segment_key"]

SIZE = 8192  # segments remembered per file read (a few MB at most)

SegmentKey = tuple[object, ...]


class _Memo:
    """Whether findings are remembered (the tests compare remembered and asked)."""

    enabled = True


MEMO = _Memo()


def segment_key(segment: Any) -> SegmentKey:
    """Everything ``is_valid_errors`` reads of ``segment``: its identifier, separators,
    and each element's components, as pyx12 split them."""
    return (
        segment.seg_id,
        segment.seg_term,
        segment.ele_term,
        segment.subele_term,
        segment.repetition_term,
        tuple(
            (element.subele_term, tuple(part.value for part in element.elements))
            for element in segment.elements
        ),
    )


class SegmentValidation:
    """``node.is_valid_errors(segment)``'s findings, remembered per map node and segment
    (``MEMO.enabled`` False: always asked, for the tests that compare both)."""

    def __init__(self, size: int | None = None) -> None:
        self.size = SIZE if size is None else size
        self._found: dict[tuple[int, SegmentKey], list[Any]] = {}
        self._nodes: dict[int, Any] = {}  # held, so that no node's id is ever reused

    def errors(self, node: Any, segment: Any) -> list[Any]:
        """The errors pyx12 finds in ``segment`` as ``node`` says it is written."""
        if not MEMO.enabled:
            return list(node.is_valid_errors(segment)[1])
        key = (id(node), segment_key(segment))
        found = self._found.get(key)
        if found is None:
            if len(self._found) >= self.size:
                self._found.clear()
            self._nodes.setdefault(id(node), node)
            found = self._found[key] = list(node.is_valid_errors(segment)[1])
        return found
