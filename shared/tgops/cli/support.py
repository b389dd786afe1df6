"""What every `tgops` subcommand shares: one-line errors, settings, and a Runtime around an async action.

Kept apart from tgops.cli (the package), which imports the command groups, so they can import this at the top.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console

from tgops.config import Settings, SettingsError, get_settings

if TYPE_CHECKING:
    from tgops.db.database import Database
    from tgops.runtime import Runtime

T = TypeVar("T")
console = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Start-up problems end the command with one line naming the setting, not a traceback."""
    from tgops.db.errors import DatabaseError
    from tgops.local.dev import StartupError
    from tgops.local.services import LocalServiceError

    try:
        yield
    except (SettingsError, StartupError, LocalServiceError, DatabaseError) as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None


def load_settings() -> Settings:
    with one_line_errors():
        return get_settings()


def run_with_runtime(action: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run `action` on a Runtime for the configured database, closed afterwards."""
    from tgops.runtime import Runtime

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


def run_with_database(action: Callable[[Database], Awaitable[T]]) -> T:
    async def on_database(runtime: Runtime) -> T:
        return await action(await runtime.database())

    return run_with_runtime(on_database)
