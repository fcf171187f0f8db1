"""The import contracts hold for the tree, and bite when a module breaks one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from importlinter.cli import lint_imports_command; lint_imports_command()",
        ],
        cwd=ROOT,
        env={"PYTHONPATH": str(src), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_tree_keeps_every_contract() -> None:
    result = _lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr


def _copy_of_the_tree(tmp_path: Path) -> Path:
    copy = tmp_path / "src"
    for package in ("payerbridge", "payerbridge_tools"):
        shutil.copytree(ROOT / "src" / package, copy / package)
    return copy


def test_an_edge_importing_the_store_breaks_a_contract(tmp_path: Path) -> None:
    copy = _copy_of_the_tree(tmp_path)
    health = copy / "payerbridge" / "api" / "responses.py"
    health.write_text(health.read_text() + "\nimport payerbridge.store.tables  # noqa\n")
    result = _lint_imports(copy)
    assert result.returncode != 0
    assert "Edges never import the store" in result.stdout
    assert "payerbridge.api.responses -> payerbridge.store.tables" in result.stdout


def test_the_product_importing_the_tools_breaks_a_contract(tmp_path: Path) -> None:
    copy = _copy_of_the_tree(tmp_path)
    main = copy / "payerbridge" / "cli" / "main.py"
    main.write_text(main.read_text() + "\nimport payerbridge_tools.cli.bench  # noqa\n")
    result = _lint_imports(copy)
    assert result.returncode != 0
    assert "The product never imports the tools" in result.stdout
    assert "payerbridge.cli.main -> payerbridge_tools.cli.bench" in result.stdout
