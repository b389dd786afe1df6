"""`tgops tasks generate|stats`: provider task generation by hand, and the task counts."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from tgops.cli.support import run_with_database, run_with_runtime

app = typer.Typer(help="Provider tasks: generate them from due orders, count them.", no_args_is_help=True)


@app.command()
def generate(
    limit: Annotated[int, typer.Option(min=1, help="due orders to handle in this run")] = 1000,
) -> None:
    """Create tasks for due orders now (what the generate_tasks schedule does every minute)."""
    from tgops.provider.generation import run

    print(json.dumps(run_with_runtime(lambda runtime: run(runtime, limit))))


@app.command()
def stats() -> None:
    """Tasks per status, and leases that expired without a report."""
    from tgops.provider.stats import task_counts

    print(json.dumps(run_with_database(task_counts)))
