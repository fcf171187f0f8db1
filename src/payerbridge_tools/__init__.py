"""payerbridge_tools: what is built around the product, not into it.

``population/`` is the one synthetic population generator (payers, households, members and
their histories), seeded and pure; ``sandbox/`` writes it out as a network of old payers
(``make run``); ``bench/`` holds the benchmarks, whose reports are in docs/benchmarks/;
``cli/`` their commands (``payerbridge bench``, ``payerbridge sandbox``, ``payerbridge demo``),
which the ``payerbridge`` CLI adds from this distribution's ``payerbridge.commands`` entry
points when this package loads.

The product never imports this package (an import contract in pyproject.toml says so); this
package uses the product. It ships in the same distribution and loads only with the
``bench`` extra installed, so that its commands say how to get them rather than fail halfway
through a run.
"""

from __future__ import annotations

import importlib.util

__all__ = ["EXTRA", "INSTALL_HINT", "REQUIRED"]

EXTRA = "bench"
INSTALL_HINT = f"pip install 'payerbridge[{EXTRA}]'"

# The bench extra's packages the tools use beyond the product's own dependencies: our
# engine's candidate join, and the name lists of the second identity generator. The reference
# engines `bench identity` compares against (Splink, recordlinkage) are imported where it
# runs them. Looked up, not imported: the CLI loads this package at every start.
REQUIRED = ("numpy", "faker")

_missing = [name for name in REQUIRED if importlib.util.find_spec(name) is None]
if _missing:
    raise ImportError(
        f"payerbridge's benchmarks and sandbox need the {EXTRA} extra "
        f"({', '.join(_missing)} not installed): {INSTALL_HINT}"
    )
