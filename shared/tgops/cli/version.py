"""`tgops version`."""

from __future__ import annotations

import typer

import tgops

app = typer.Typer()


@app.command()
def version() -> None:
    """Print the tgops version."""
    print(tgops.__version__)
