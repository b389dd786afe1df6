"""What every `tgops` subcommand shares: one-line errors, settings, and a Runtime around an async action.

It imports nothing dev-only (tgops.local's embedded services, uvicorn, moto; tgops.local.dev_state is
standard library only): commands run on any machine.

Kept apart from tgops.cli (the package), which imports the command groups, so they can import this at the top.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from tgops.config import Settings, SettingsError, get_settings
from tgops.errors import StartupError
from tgops.local.dev_state import read_dev_state

if TYPE_CHECKING:
    from tgops.db.database import Database
    from tgops.runtime import Runtime

T = TypeVar("T")
console = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Start-up problems end the command with one line naming the setting, not a traceback."""
    from tgops.db.errors import DatabaseError

    try:
        yield
    except (SettingsError, StartupError, DatabaseError) as error:
        raise fail(str(error)) from None


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: <message>` as the command's one line on stderr; raise what it returns."""
    console.print(f"[red]error:[/red] {escape(message)}")
    return typer.Exit(code)


def load_settings() -> Settings:
    """The settings, with what the `tgops dev` running from this folder set for itself
    (`<data_dir>/dev.json`: its embedded database, Redis, queues, fake panel, local secrets) standing in
    for every variable not set here. So every command works beside it with nothing exported."""
    with one_line_errors():
        settings = get_settings()
        from_dev = {
            name: value for name, value in read_dev_state(settings.data_dir).items() if name not in os.environ
        }
        if not from_dev:
            return settings
        os.environ.update(from_dev)  # this process is one command: AWS_* reach boto3 the same way
        get_settings.cache_clear()
        return get_settings()


def missing_setting(name: str) -> typer.Exit:
    """`TGOPS_X: not set`, saying that no `tgops dev` runs here to supply it either."""
    return fail(f"{name}: not set, and no `tgops dev` runs from this folder to supply it")


def run_with_runtime(action: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run `action` on a Runtime for the configured database, closed afterwards."""
    from tgops.runtime import Runtime

    settings = load_settings()
    if not settings.database_url:
        raise missing_setting("TGOPS_DATABASE_URL")

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
