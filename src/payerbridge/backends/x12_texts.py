"""What the X12 reader says about a pyx12 error (pure): texts built from the error's
code, the element reference and the map's names, never from pyx12's own message, which
may quote the value (a name, a member id, a birth date)."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["element_text", "walk_text"]

_ELEMENT = {
    "1": "is required but missing",
    "2": "is required with another element of the segment and is missing",
    "3": "has too many components or repetitions",
    "4": "is too short",
    "5": "is too long",
    "6": "holds a character this element does not allow",
    "7": "holds a code the implementation guide does not allow here",
    "8": "is not a valid date",
    "9": "is not a valid time",
    "10": "is present but not used in this implementation guide (or excluded by another)",
}
_CODE = re.compile(r"^[A-Z0-9]{1,3}$")
_SEPARATOR_LIKE = "><|!^\\:"


def element_text(error: Any, component: str = "") -> str:
    """An element error of ``segment_if.is_valid_errors``; ``component`` (ISA16) lets a
    value that holds another separator-like character be said to (the character only:
    a file whose body uses another component separator than its ISA16 names)."""
    code = str(error.err_cde)
    ref = str(error.refdes or "")[:12]
    node = getattr(error, "map_node", None)
    name = _name(node)
    if node is None:
        # Segment-level syntax: too many elements, a paired or exclusive rule broken.
        return f"segment syntax error{f' at {ref}' if ref else ''} (X12 element error {code})"
    what = f"{ref} ({name})" if name else ref
    text = f"{what} {_ELEMENT.get(code, f'is invalid (X12 element error {code})')}"
    value = str(error.err_val or "")
    if code == "7" and _CODE.match(value) and _is_code_element(node):
        text += f": {value}"
    if code in ("4", "5", "6", "7") and component:
        other = next((c for c in _SEPARATOR_LIKE if c in value and c != component), None)
        if other is not None:
            text += (
                f" (it holds '{other}': is '{other}' the component separator the file"
                f" uses, where its ISA16 says '{component}'?)"
            )
    return text


def walk_text(error: Any, segment_id: str) -> str:
    """A segment error of ``walk_tree.walk_errors``: its texts name map nodes (names
    and counts), except 'not found', which quotes a value and is said here instead."""
    code = str(error.err_cde)
    sid = segment_id[:3]
    if code == "1":
        return f"segment {sid} is not expected here by the implementation guide"
    original = str(error.err_str)
    if code in ("2", "3", "4", "5") and _is_map_text(original):
        return original
    return f"segment {sid}: X12 segment error {code}"


def _name(node: Any) -> str:
    name = getattr(node, "name", None)
    return str(name)[:80] if name else ""


def _is_code_element(node: Any) -> bool:
    data_type = getattr(node, "data_type", None)
    return data_type == "ID"


def _is_map_text(text: str) -> bool:
    """pyx12's texts for codes 2-5: 'Mandatory segment "<name>" (<id>) missing',
    'Loop <id> exceeded max count...', '<...> found but marked as not used'."""
    return bool(
        re.fullmatch(r'Mandatory (segment|loop) "[^"]{1,80}" \([A-Z0-9]{2,6}\) missing', text)
        or re.fullmatch(
            r"(Segment|Loop) [A-Z0-9]{2,6} (found but marked as not used|"
            r"exceeded max count\.  Found \d+, should have \d+)",
            text,
        )
    )
