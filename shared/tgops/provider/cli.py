"""`tgops tasks generate|stats`: provider task generation by hand, and the task counts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.console import Console

from tgops.runtime import Runtime

T = TypeVar("T")

app = typer.Typer(help="Provider tasks: generate them from due orders, count them.", no_args_is_help=True)
console = Console(stderr=True, highlight=False, soft_wrap=True)


def _with_runtime(action: Callable[[Runtime], Awaitable[T]]) -> T:
    from tgops.cli import load_settings, one_line_errors

    settings = load_settings()
    if not settings.database_url:
        console.print("[red]error:[/red] TGOPS_DATABASE_URL: not set")
        raise typer.Exit(2)

    async def run() -> T:
        runtime = Runtime(settings)
        try:
            return await action(runtime)
        finally:
            await runtime.close()

    with one_line_errors():
        return asyncio.run(run())


@app.command()
def generate(
    limit: Annotated[int, typer.Option(min=1, help="due orders to handle in this run")] = 1000,
) -> None:
    """Create tasks for due orders now (what the generate_tasks schedule does every minute)."""
    from tgops.provider.generation import run

    print(json.dumps(_with_runtime(lambda runtime: run(runtime, limit))))


@app.command()
def stats() -> None:
    """Tasks per status, and leases that expired without a report."""
    from tgops.provider.stats import task_counts

    async def counts(runtime: Runtime) -> dict[str, int]:
        return await task_counts(await runtime.database())

    print(json.dumps(_with_runtime(counts)))
