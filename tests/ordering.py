"""The order in which test modules are handed to the workers (issue 69, ADR 0028): the
longest first, so that no worker starts a long module when the others are nearly done.

``make test`` runs pytest-xdist with ``--dist loadfile``: each worker takes one module at
a time from a queue. By default xdist sorts that queue by the number of tests in each
module, most first, which puts the modules that take longest last: an end-to-end module
has a few tests, each starting servers and waiting on them, and one of four minutes then
ran alone at the end of the pass. ``make test`` passes ``--no-loadscope-reorder``, so the
queue is the collection order, which this plugin sets: the modules measured longest, then
the other end-to-end modules, the integration modules, the golden files and the unit
tests, whose many short modules fill the workers' ends evenly.

A module missing from ``LONGEST`` (a new one, or one renamed) only loses its place in
the front row; nothing is left out. Each worker sorts its own collection the same way,
as xdist requires.
"""

from __future__ import annotations

import pytest

__all__ = ["LONGEST", "module_rank"]

# The longest modules of the SQLite pass, longest first (tests' time summed, four
# workers on the 2-core machine, 2026-11-28): each over 70 s.
LONGEST = (
    "tests/e2e/test_fuzz.py",  # 277 s
    "tests/e2e/test_orchestration.py",  # 165 s
    "tests/e2e/test_exchange.py",  # 165 s
    "tests/e2e/test_incremental_exchange.py",  # 126 s
    "tests/e2e/test_source_partners.py",  # 98 s
    "tests/e2e/test_onboarding_cli.py",  # 97 s
    "tests/e2e/test_cli.py",  # 96 s
    "tests/e2e/test_identity_cli.py",  # 83 s
    "tests/e2e/test_security.py",  # 74 s
    "tests/e2e/test_onboarding.py",  # 74 s
)
_TIERS = ("e2e", "integration", "golden", "unit")


def module_rank(path: str) -> tuple[int, int]:
    """Where the module at ``path`` (relative to the project, as in a node id) comes."""
    if path in LONGEST:
        return 0, LONGEST.index(path)
    parts = path.split("/")
    tier = parts[1] if len(parts) > 2 else ""
    return 1 + (_TIERS.index(tier) if tier in _TIERS else len(_TIERS)), 0


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # A stable sort on a key shared by all of a module's tests keeps each module's tests
    # together and in their own order.
    items.sort(key=lambda item: module_rank(item.nodeid.split("::", 1)[0]))
