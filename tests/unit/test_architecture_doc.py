"""docs/architecture.md (and docs/rooms.md, its long version) stay true to the tree and to
the import contracts.

The page's conventions (stated in it): `name/` is a package and `name.py` a module under
src/payerbridge/; other paths are under src/payerbridge/ unless they start with docs/,
tests/ or src/; `name()` is a function defined under src/ (the product or the tools); the
```layers block is the product's layers contract, one line per layer. docs/rooms.md
follows the same conventions; its paths and functions are checked the same way.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ROOT / "src"
PACKAGE = SOURCES / "payerbridge"
DOC = ROOT / "docs" / "architecture.md"
ROOMS = ROOT / "docs" / "rooms.md"
PREFIX = "payerbridge."

_CODE = re.compile(r"`([^`\n]+)`")
_PATH = re.compile(r"[\w./-]+(?:\.py|\.md|/)")
_FUNCTION = re.compile(r"(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*)\(\)")
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _doc(page: Path = DOC) -> str:
    return page.read_text(encoding="utf-8")


def _prose(page: Path = DOC) -> str:
    """The page without its fenced blocks."""
    return re.sub(r"^```.*?^```", "", _doc(page), flags=re.DOTALL | re.MULTILINE)


def _block(info: str) -> list[str]:
    found = re.findall(rf"^```{info}\n(.*?)^```", _doc(), flags=re.DOTALL | re.MULTILINE)
    assert len(found) == 1, f"docs/architecture.md needs exactly one ```{info} block"
    return [line.strip() for line in found[0].splitlines() if line.strip()]


def _layers_contract() -> dict[str, Any]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = config["tool"]["importlinter"]["contracts"]
    layers = [
        contract
        for contract in contracts
        if contract["type"] == "layers" and contract["layers"][0].startswith(PREFIX)
    ]
    assert len(layers) == 1
    contract: dict[str, Any] = layers[0]
    return contract


def _short(module: str) -> str:
    assert module.startswith(PREFIX), module
    return module.removeprefix(PREFIX)


def _cited(page: Path = DOC) -> list[str]:
    return [token.strip() for token in _CODE.findall(_prose(page))]


def test_every_package_and_top_level_module_is_named() -> None:
    cited = set(_cited())
    packages = {f"{p.parent.name}/" for p in PACKAGE.glob("*/__init__.py")}
    modules = {p.name for p in PACKAGE.glob("*.py")} - {"__init__.py", "__main__.py"}
    missing = sorted((packages | modules) - cited)
    assert not missing, f"docs/architecture.md does not name {missing}"


def test_the_layer_diagram_is_the_layers_contract() -> None:
    contract = [
        " | ".join(_short(module.strip()) for module in layer.split("|"))
        for layer in _layers_contract()["layers"]
    ]
    assert _block("layers") == contract


def test_no_contract_has_an_exception() -> None:
    """The page says none has: the FHIR package sits below the rooms that speak it."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    excepted = [c["name"] for c in contracts["contracts"] if c.get("ignore_imports")]
    assert excepted == []
    assert "No contract has an exception." in DOC.read_text()


def _exists(path: str) -> bool:
    if path.startswith(("docs/", "tests/", "src/")):
        return (ROOT / path).exists()
    return (PACKAGE / path).exists() or (ROOT / path).exists()


PAGES = pytest.mark.parametrize("page", [DOC, ROOMS], ids=lambda p: p.name)


@PAGES
def test_every_cited_path_exists(page: Path) -> None:
    paths = [token for token in _cited(page) if _PATH.fullmatch(token)]
    assert len(paths) > 30  # the page cites files; a parse that finds none is broken
    missing = sorted({path for path in paths if not _exists(path)})
    assert not missing, f"docs/{page.name} cites paths that do not exist: {missing}"


def test_every_link_leads_to_a_file() -> None:
    # Anchors are tests/unit/test_docs.py's to check; here, the file.
    links = [link.partition("#")[0] for link in _LINK.findall(_doc()) if "://" not in link]
    assert links
    missing = sorted({link for link in links if not (DOC.parent / link).exists()})
    assert not missing, f"docs/architecture.md links to what does not exist: {missing}"


@PAGES
def test_every_cited_function_is_defined(page: Path) -> None:
    names = {m.group(1) for token in _cited(page) if (m := _FUNCTION.fullmatch(token))}
    assert len(names) > 30
    source = "\n".join(p.read_text(encoding="utf-8") for p in SOURCES.rglob("*.py"))
    defined = set(re.findall(r"^\s*(?:async\s+)?def\s+(\w+)\s*\(", source, flags=re.MULTILINE))
    missing = sorted(names - defined)
    assert not missing, f"docs/{page.name} cites functions no module defines: {missing}"
