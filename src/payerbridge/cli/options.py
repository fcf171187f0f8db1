"""Options shared by the command modules."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

__all__ = ["DataDir"]

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Data directory (default ./var or PAYERBRIDGE_DATA_DIR)."),
]
