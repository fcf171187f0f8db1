"""Ratchets on the shape of the product's code (issue 69): what is being reduced cannot
grow back while it is reduced.

- Functions with more than five parameters (ruff's PLR0913, which the product does not
  yet enforce): a use case takes a command and a unit of work, not a dozen loose values.
- Store modules that import a room's logic rather than only its ports and model: the
  stores are adapters (``store/`` implements what the rooms declare; it does not decide).

Each ceiling is the count when the ratchet was set. A change that adds one fails here;
one that removes some lowers the ceiling in the same commit (the test fails until it
does, so the gain is kept). Issue 69's targets: at most 40 PLR0913, no store module
importing room logic.
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

MAX_TOO_MANY_ARGUMENTS = 116
MAX_STORE_MODULES_WITH_ROOM_LOGIC = 12

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
