"""The stores write in the caller's unit of work: none opens a transaction of its own,
reads the clock or builds an audit event (issue 51); the unit of work itself and the
migration are the only places a transaction begins."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

STORE = Path(__file__).resolve().parents[2] / "src" / "payerbridge" / "store"
FORBIDDEN = {
    "opens a transaction": re.compile(r"\.begin\(\)"),
    "reads the clock": re.compile(r"datetime\.now\(|utcnow\(\)|time\.time\(\)|date\.today\("),
    "builds an audit event": re.compile(r"\bAuditEvent\("),
}
# Where a transaction may begin: the unit of work and the migration, which runs before
# anything else. The clock is the one SqlTransactions is given.
ALLOWED = {
    ("unit_of_work.py", "opens a transaction"),
    ("engines.py", "opens a transaction"),
}


@pytest.mark.parametrize("path", sorted(STORE.rglob("*.py")), ids=lambda p: p.name)
def test_a_store_writes_only_in_the_callers_unit(path: Path) -> None:
    text = path.read_text()
    broken = [
        f"{path.name}:{text[: match.start()].count(chr(10)) + 1} {rule}"
        for rule, pattern in FORBIDDEN.items()
        if (path.name, rule) not in ALLOWED
        for match in pattern.finditer(text)
    ]
    assert broken == []


def test_the_migration_is_the_one_transaction_engines_begins() -> None:
    tree = ast.parse((STORE / "engines.py").read_text())
    beginners = {
        function.name
        for function in ast.walk(tree)
        if isinstance(function, ast.FunctionDef)
        for call in ast.walk(function)
        if isinstance(call, ast.Call)
        and isinstance(call.func, ast.Attribute)
        and call.func.attr == "begin"
    }
    assert beginners == {"migrate"}
