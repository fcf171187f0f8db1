"""The tools package loads only with the bench extra, and says so when it is missing."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import payerbridge_tools

ROOT = Path(__file__).resolve().parents[3]


def _requirement_name(requirement: str) -> str:
    return requirement.split("==")[0].split("[")[0].split(";")[0].strip().lower()


def test_what_the_tools_need_to_load_is_in_the_bench_extra_and_the_test_extra() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    for extra in (payerbridge_tools.EXTRA, "test"):
        names = {_requirement_name(requirement) for requirement in extras[extra]}
        assert set(payerbridge_tools.REQUIRED) <= names, extra


def test_without_the_extra_the_package_does_not_load_and_says_how_to_get_it() -> None:
    hide_faker = (
        "import importlib.util as u; find = u.find_spec; "
        "u.find_spec = lambda name, *a: None if name == 'faker' else find(name, *a); "
        "import payerbridge_tools"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_faker], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert "faker not installed" in result.stderr
    assert "pip install 'payerbridge[bench]'" in result.stderr
