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

A path filtered by a simple ``where`` (``supportingInfo.where(category.memberOf('…'))
.sequence.subsetOf(…)``) is read as the elements its condition and what follows name
(``supportingInfo`` cut to ``category`` and ``sequence``), not whole: its items' other
elements (a claim's account number) then do not make each claim's input distinct. Only
a condition of plain paths, literals and operators, followed by a path that ends the
expression or ends in a function that gives no item back (``exists()``, ``count()``,
``subsetOf(…)``...), is read so; any other ``where`` reads its path whole.
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
# ``path.where(`` at the start of a path (``_CHAIN``'s boundary).
_WHERE = re.compile(r"(?<![\w.%$])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\.where\(")
# What a simple condition is made of: paths (a function with no argument or a string
# after a path), literals, comparison and boolean operators.
_CONDITION = re.compile(
    r"''|\d+(?:\.\d+)?|[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*(?:\((?:'')?\))?|!=|<=|>=|[=<>|+\-]|\s+"
)
_AFTER = re.compile(r"\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(\(?)")
# Functions that end what follows a filtered path and give no item of it back; those
# marked take an argument evaluated on the resource (read as the rest of the text).
_ENDS = frozenset(["exists", "empty", "count", "not", "hasValue", "allTrue", "anyTrue"])
_ENDS_AT_ROOT = frozenset(["subsetOf", "supersetOf"])


def projection_of(expression: str) -> Projection | None:
    """The element paths ``expression`` reads from its context, as a tree (empty: all of
    it); None when it may read anything else (never memoized)."""
    if any(marker in expression for marker in _NOT_LOCAL):
        return None
    text = _STRING.sub("''", expression)
    if _WHOLE_CONTEXT.search(text):
        return {}  # the context itself is read: all of it
    ends: set[tuple[str, ...]] = set()
    text = _filtered_paths(text, ends)
    text = text.replace("%context.", "").replace("$this.", "")
    tree: Projection = {}
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


def _filtered_paths(text: str, ends: set[tuple[str, ...]]) -> str:
    """``text`` with each simple ``path.where(condition).after`` blanked out, and what
    it reads added to ``ends`` (the path's items cut to the condition's and ``after``'s
    paths); any other ``where`` is left for the path to be read whole."""
    position = 0
    while match := _WHERE.search(text, position):
        position = match.end()
        close = _closing(text, match.end())
        found = _where_reads(match.group(1), text[match.end() : close], text[close + 1 :])
        if found is None:
            continue
        paths, length = found
        ends.update(paths)
        end = close + 1 + length
        text = text[: match.start()] + " " * (end - match.start()) + text[end:]
    return text


def _closing(text: str, start: int) -> int:
    """Where the parenthesis opened just before ``start`` closes (the end: never)."""
    depth = 1
    for index in range(start, len(text)):
        depth += {"(": 1, ")": -1}.get(text[index], 0)
        if depth == 0:
            return index
    return len(text)


def _where_reads(path: str, condition: str, rest: str) -> tuple[list[tuple[str, ...]], int] | None:
    """What ``path.where(condition)`` and the path after it (at the start of ``rest``)
    read, and how much of ``rest`` that path takes; None when it is not simple."""
    names = tuple(path.split("."))
    if names[0][:1].isupper():
        names = names[1:]  # a type name
    tokens = _CONDITION.findall(condition)
    if not names or "".join(tokens) != condition:
        return None
    paths: list[tuple[str, ...]] = []
    for token in tokens:
        if token[:1].isalpha() or token[:1] == "_":
            if "(" in token and "." not in token:
                return None  # a function of the item itself
            inner = token.split("(")[0].split(".")
            inner = inner[:-1] if "(" in token else inner
            if inner and not (len(inner) == 1 and inner[0] in _KEYWORDS):
                paths.append(names + tuple(inner))
    after = _AFTER.match(rest)
    if after is None:
        return None  # the items themselves are compared or given
    following = after.group(1).split(".")
    length = after.end()
    if after.group(2):
        function = following.pop()
        if function in _ENDS:
            if not rest[length:].startswith(")"):
                return None
            if rest[length + 1 :].startswith(".") and not rest[length + 1 :].startswith(".not()"):
                return None
        elif function not in _ENDS_AT_ROOT:
            return None
        length -= 1  # the argument is read as the rest of the text
    if following or not paths:
        paths.append(names + tuple(following))  # (its items are kept: counted alike)
    return paths, length


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
