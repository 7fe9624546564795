"""`python -m careops_cli` runs the CLI."""

from careops_cli.main import app

app()
