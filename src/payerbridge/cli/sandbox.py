"""``payerbridge sandbox`` and ``payerbridge demo``."""

import typer

sandbox_app = typer.Typer(no_args_is_help=True, help="Synthetic payer network.")


def demo() -> None:
    """Run the demo."""
