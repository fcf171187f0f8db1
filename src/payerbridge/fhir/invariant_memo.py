"""What an invariant's answer depends on, so that it is evaluated once per distinct input
(pure): claims of one file repeat the parts an invariant reads (their type, the codes of
their items, their insurance's focal flag) while differing in everything else.

An invariant on a resource reads only the elements its FHIRPath names: the input is the
resource cut to those paths (``project``), each path's end kept whole (what a function
called there reads is inside it), and for a name, its choice-type forms (``value`` is
``valueQuantity``) and its primitive extensions (``_birthDate``). An invariant on an
element inside the resource reads that element (and its subtree) alone. Expressions that
read beyond them (``%resource``, ``resolve()``, ``descendants()``, ``children()``,
``repeat()``), or the clock (``today()``, ``now()``) are never memoized.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

__all__ = ["Projection", "memo_key", "projection_of"]

# A tree of element names; an empty tree: the element is read whole.
Projection = dict[str, "Projection"]

_NOT_LOCAL = (
    "%resource",
    "%rootResource",
    "resolve(",
    "descendants(",
    "children(",
    "repeat(",
    "today(",
    "now(",
    "timeOfDay(",
    "`",
)
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'")
_CHAIN = re.compile(r"(?<![\w.%$])[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_WHOLE_CONTEXT = re.compile(r"(%context|\$this)(?!\.)")
_KEYWORDS = frozenset(
    ["and", "or", "xor", "implies", "div", "mod", "in", "contains", "is", "as", "true", "false"]
)


def projection_of(expression: str) -> Projection | None:
    """The element paths ``expression`` reads from its context, as a tree (empty: all of
    it); None when it may read anything else (never memoized)."""
    if any(marker in expression for marker in _NOT_LOCAL):
        return None
    text = _STRING.sub("''", expression)
    if _WHOLE_CONTEXT.search(text):
        return {}  # the context itself is read: all of it
    text = text.replace("%context.", "").replace("$this.", "")
    tree: Projection = {}
    ends: set[tuple[str, ...]] = set()
    for match in _CHAIN.finditer(text):
        names = match.group(0).split(".")
        if text[match.end() : match.end() + 1] == "(":
            names = names[:-1]  # a function, not an element
        if names and names[0][:1].isupper():
            names = names[1:]  # a type name (``ExplanationOfBenefit.item``)
        if names and not (len(names) == 1 and names[0] in _KEYWORDS):
            ends.add(tuple(names))
    for path in sorted(ends, key=len):
        node = tree
        for depth, name in enumerate(path):
            if depth and node == {} and path[:depth] in ends:
                break  # an ancestor is read whole
            node = node.setdefault(name, {})
    return tree


def memo_key(projection: Projection, value: Any, root: Mapping[str, Any]) -> bytes:
    """The input an invariant's answer depends on: the resource cut to ``projection``
    when it is evaluated on the resource, else the element itself."""
    if value is root:
        return orjson.dumps(_project(value, projection), option=orjson.OPT_SORT_KEYS)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _project(value: Any, tree: Projection) -> Any:
    if not tree:
        return value
    if isinstance(value, list):
        return [_project(item, tree) for item in value]
    if not isinstance(value, Mapping):
        return value
    kept: dict[str, Any] = {}
    for key, item in value.items():
        name = key[1:] if key.startswith("_") else key
        for wanted, below in tree.items():
            # ``value`` reads ``valueQuantity`` (a choice type); ``_x`` holds x's extensions.
            if name == wanted:
                kept[key] = _project(item, below)
                break
            if name.startswith(wanted) and name[len(wanted) : len(wanted) + 1].isupper():
                kept[key] = item
                break
    return kept
