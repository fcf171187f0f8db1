"""``python -m payerbridge`` runs the CLI."""

from payerbridge.cli.main import app

app()
