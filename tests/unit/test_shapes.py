"""Ratchets on the shape of the product's code (issue 69): what is being reduced cannot
grow back while it is reduced.

- Functions with more than five parameters (ruff's PLR0913, which the product does not
  yet enforce): a use case takes a command and a unit of work, not a dozen loose values.
- Store modules that import a room's logic rather than only its ports and model: the
  stores are adapters (``store/`` implements what the rooms declare; it does not decide).
- The ``Platform`` fields the edges reach for (the API, the console, the command line and
  the workflows): the edges build a room's unit of work and start workflows; they do not
  pick stores out of a 49-field bag.

Each ceiling is the count when the ratchet was set. A change that adds one fails here;
one that removes some lowers the ceiling in the same commit (the test fails until it
does, so the gain is kept). Issue 69's targets: at most 40 PLR0913, no store module
importing room logic, at most 15 ``Platform`` fields used by the edges.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "payerbridge"
STORE = PACKAGE / "store"

MAX_TOO_MANY_ARGUMENTS = 26
MAX_STORE_MODULES_WITH_ROOM_LOGIC = 0
MAX_PLATFORM_FIELDS_USED_BY_EDGES = 3
EDGES = ("api", "console", "cli", "workflows")

# What a store may import of the product besides other stores: the shared kernel, and
# a room's declarations (its ports and its model).
KERNEL = {
    "payerbridge",
    "payerbridge.types",
    "payerbridge.errors",
    "payerbridge.config",
    "payerbridge.clock",
    "payerbridge.timestamps",
    "payerbridge.json_paths",
    "payerbridge.big_json",
    "payerbridge.logging",
    "payerbridge.npi",
    "payerbridge.processes",
    "payerbridge.transactions",
    # Tracing (ADR 0033) is instrumentation, not a room: it decides nothing about the
    # domain, sits below every layer in the import-linter contract, and is made for the
    # edges, the workflows and the adapters (a span per unit of work and per statement).
    "payerbridge.tracing",
    # The FHIR R4 resource vocabulary and its traversal (which types we hold, the element
    # that puts each in a Patient's compartment, the id syntax, the references in a
    # resource): the wire format's facts, shared by the rooms, the edges and the stores,
    # no room's decision. The import-linter contract puts ``fhir`` below ``store``.
    "payerbridge.fhir.resources",
}
DECLARATIONS = {"ports", "model", "models"}


def _ruff_count(rule: str) -> int:
    found = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "check",
            str(PACKAGE),
            "--select",
            rule,
            "--output-format",
            "json",
            "--exit-zero",
            "--no-cache",
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return len(json.loads(found.stdout))


def _imports_room_logic(path: Path) -> list[str]:
    """The room modules ``path`` imports that are neither a port nor a model."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        module = node.module
        if not module.startswith("payerbridge.") or module in KERNEL:
            continue
        if module.startswith("payerbridge.store"):
            continue
        if module.rsplit(".", 1)[-1] in DECLARATIONS:
            continue
        found.append(module)
    return sorted(set(found))


def test_functions_with_more_than_five_parameters_do_not_grow() -> None:
    count = _ruff_count("PLR0913")
    assert count <= MAX_TOO_MANY_ARGUMENTS, (
        f"{count} product functions take more than five parameters (ceiling "
        f"{MAX_TOO_MANY_ARGUMENTS}): pass a command object, or a unit of work that "
        "carries the stores (`ruff check src/payerbridge --select PLR0913` lists them)"
    )
    assert count == MAX_TOO_MANY_ARGUMENTS, (
        f"down to {count}: lower MAX_TOO_MANY_ARGUMENTS to keep the gain"
    )


def test_store_modules_that_import_room_logic_do_not_grow() -> None:
    offenders = {
        path.relative_to(STORE).as_posix(): logic
        for path in sorted(STORE.rglob("*.py"))
        if (logic := _imports_room_logic(path))
    }
    count = len(offenders)
    assert count <= MAX_STORE_MODULES_WITH_ROOM_LOGIC, (
        f"{count} store modules import a room's logic, not only its ports and model "
        f"(ceiling {MAX_STORE_MODULES_WITH_ROOM_LOGIC}): {offenders}"
    )
    assert count == MAX_STORE_MODULES_WITH_ROOM_LOGIC, (
        f"down to {count}: lower MAX_STORE_MODULES_WITH_ROOM_LOGIC to keep the gain"
    )


def _platform_fields() -> set[str]:
    """The names of ``Platform``'s fields and properties (its methods are behaviour)."""
    tree = ast.parse((PACKAGE / "wiring" / "platform.py").read_text(encoding="utf-8"))
    (platform,) = [
        node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "Platform"
    ]
    names = {
        node.target.id
        for node in platform.body
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
    }
    names |= {
        node.name
        for node in platform.body
        if isinstance(node, ast.FunctionDef)
        and any(isinstance(d, ast.Name) and d.id == "property" for d in node.decorator_list)
    }
    return names


def _platform_fields_used_by_edges() -> set[str]:
    """The fields the edges read off a platform (``platform.x``, ``state.platform.x``)."""
    fields = _platform_fields()
    used = set()
    for edge in EDGES:
        for path in (PACKAGE / edge).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Attribute) or node.attr not in fields:
                    continue
                owner = node.value
                name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
                if name == "platform":
                    used.add(node.attr)
    return used


def test_platform_fields_used_by_the_edges_do_not_grow() -> None:
    used = _platform_fields_used_by_edges()
    assert len(used) <= MAX_PLATFORM_FIELDS_USED_BY_EDGES, (
        f"the edges use {len(used)} Platform fields (ceiling "
        f"{MAX_PLATFORM_FIELDS_USED_BY_EDGES}): build the room's unit "
        f"(`platform.units.<room>()`) instead: {sorted(used)}"
    )
    assert len(used) == MAX_PLATFORM_FIELDS_USED_BY_EDGES, (
        f"down to {len(used)}: lower MAX_PLATFORM_FIELDS_USED_BY_EDGES to keep the gain"
    )
