"""`tgops accounts ...`: the MTProto account fleet (import, login, list, enable, disable, proxy, role,
re-encrypt). Thin: the work is in tgops.accounts.

Beside a running `tgops dev` (same folder) the commands use its embedded database, and its local session
key from `<data_dir>/`; a configured TGOPS_DATABASE_URL or TGOPS_SESSION_ENCRYPTION_KEY wins.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

from tgops.cli.support import console, load_settings, one_line_errors
from tgops.config import PLACEHOLDER, Settings, get_settings
from tgops.local.dev_state import read_dev_state

if TYPE_CHECKING:
    from tgops.accounts.fleet import AccountFleet, Proxy
    from tgops.runtime import Runtime

T = TypeVar("T")
app = typer.Typer(
    help="MTProto accounts: import, log in, list, enable, disable, proxy, role.", no_args_is_help=True
)
SESSION_KEY_FILE = "session-encryption.key"


def fleet_settings() -> Settings:
    """The settings, completed from a `tgops dev` running in this folder (database, queues, local key)."""
    settings = load_settings()
    state = read_dev_state(settings.data_dir)
    for name, value in state.items():
        os.environ.setdefault(name, value)
    key_file = settings.data_dir / SESSION_KEY_FILE
    if settings.session_encryption_key.get_secret_value() == PLACEHOLDER and key_file.exists():
        os.environ["TGOPS_SESSION_ENCRYPTION_KEY"] = key_file.read_text().strip()
    if state and settings.sqs_endpoint_url is None:
        for name, value in (("AWS_ACCESS_KEY_ID", "local"), ("AWS_SECRET_ACCESS_KEY", "local")):
            os.environ.setdefault(name, value)
    get_settings.cache_clear()
    settings = load_settings()
    if not settings.database_url:
        _fail("TGOPS_DATABASE_URL: not set, and no `tgops dev` runs from this folder")
    return settings


def run_on_runtime(action: Callable[[Runtime], Awaitable[T]]) -> T:
    from tgops.runtime import Runtime

    settings = fleet_settings()

    async def run() -> T:
        runtime = Runtime(settings)
        try:
            return await action(runtime)
        finally:
            await runtime.close()

    from tgops.accounts.fleet import AccountNotFound
    from tgops.accounts.importing import ImportFileError
    from tgops.accounts.login import LoginFailed
    from tgops.telegram.sessions import SessionKeyError

    with one_line_errors():
        try:
            return asyncio.run(run())
        except (AccountNotFound, ImportFileError, LoginFailed, SessionKeyError, ValueError) as error:
            _fail(str(error), 1)


def run_on_fleet(action: Callable[[AccountFleet], Awaitable[T]]) -> T:
    async def on_fleet(runtime: Runtime) -> T:
        from tgops.accounts.fleet import AccountFleet
        from tgops.telegram.sessions import SessionCipher

        return await action(
            AccountFleet(await runtime.database(), SessionCipher.from_settings(runtime.settings))
        )

    return run_on_runtime(on_fleet)


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(code)


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="a .csv, .json, .session file, or a folder of .session files")],
) -> None:
    """Import accounts (phone + StringSession); importing the same file again changes nothing."""
    from tgops.accounts.importing import import_accounts, read_candidates

    async def run(fleet: AccountFleet):
        candidates = read_candidates(file)
        with Progress(
            TextColumn("importing"), BarColumn(), MofNCompleteColumn(), console=console
        ) as progress:
            task = progress.add_task("import", total=len(candidates))
            return await import_accounts(fleet, candidates, lambda _: progress.advance(task))

    summary = run_on_fleet(run)
    table = Table("result", "where", "phone", "reason")
    for bucket, style in (("imported", "green"), ("skipped", "yellow"), ("failed", "red")):
        for outcome in getattr(summary, bucket):
            table.add_row(f"[{style}]{bucket}[/{style}]", outcome.label, outcome.phone or "-", outcome.reason)
    console.print(table)
    counts = summary.as_dict()
    console.print(f"{counts['imported']} imported, {counts['skipped']} skipped, {counts['failed']} failed")
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def login(
    phone: Annotated[str, typer.Argument(help="the account's phone number, e.g. +15551234567")],
    probe: Annotated[bool, typer.Option("--probe", help="an inspection (probe) account")] = False,
) -> None:
    """Sign an account in: the code Telegram sends, then the 2FA password if it asks. Nothing typed is shown."""
    from tgops.accounts import login as login_flow

    def ask(prompt: str) -> str:
        return typer.prompt(prompt, hide_input=True, err=True)

    async def run(fleet: AccountFleet):
        client = login_flow.telethon_login_client(fleet_settings())
        return await login_flow.login(
            fleet, phone, client=client, ask_code=ask, ask_password=ask, probe=probe
        )

    result = run_on_fleet(run)
    console.print(f"account {result.account_id} {'added' if result.created else 'signed in again'}")


@app.command("list")
def list_() -> None:
    """Every account: status, role, proxy, cooldown left, disabled reason, setup progress."""
    lines = run_on_fleet(lambda fleet: fleet.list())
    table = Table("id", "phone", "role", "status", "proxy", "cooldown", "disabled reason", "setup")
    for line in lines:
        cooldown = f"{line.cooldown_left_sec}s" if line.cooldown_left_sec else "-"
        table.add_row(
            str(line.id), line.phone, line.role, line.status, line.proxy, cooldown,
            line.disabled_reason or "-", line.setup_progress,
        )  # fmt: skip
    console.print(table)


@app.command()
def enable(account: Annotated[str, typer.Argument(help="phone or id")]) -> None:
    """Make the account usable again (clears a disable)."""
    console.print(f"account {run_on_fleet(lambda fleet: fleet.enable(account))} enabled")


@app.command()
def disable(
    account: Annotated[str, typer.Argument(help="phone or id")],
    reason: Annotated[str, typer.Option(help="shown in `tgops accounts list`")] = "disabled by the operator",
) -> None:
    """Stop using the account."""
    console.print(f"account {run_on_fleet(lambda fleet: fleet.disable(account, reason))} disabled")


@app.command("set-proxy")
def set_proxy(
    account: Annotated[str, typer.Argument(help="phone or id")],
    proxy_type: Annotated[str | None, typer.Option("--type", help="socks5, socks4, http or mtproxy")] = None,
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535)] = None,
    username: Annotated[str | None, typer.Option()] = None,
    ask_password: Annotated[
        bool, typer.Option("--password", help="ask for the proxy password (hidden)")
    ] = False,
    none: Annotated[bool, typer.Option("--none", help="connect without a proxy")] = False,
) -> None:
    """Give the account a proxy (its password, or an MTProxy secret, is asked for hidden), or none."""
    from tgops.accounts.fleet import PROXY_TYPES, Proxy

    proxy: Proxy | None = None
    if not none:
        if proxy_type not in PROXY_TYPES or not host or not port:
            _fail(f"--type ({', '.join(PROXY_TYPES)}), --host and --port are required (or --none)")
        password = typer.prompt("proxy password", hide_input=True, err=True) if ask_password else None
        proxy = Proxy(proxy_type, host, port, username, password)
    account_id = run_on_fleet(lambda fleet: fleet.set_proxy(account, proxy))
    console.print(f"account {account_id}: {'no proxy' if proxy is None else f'{proxy.type}://{host}:{port}'}")


@app.command("set-probe")
def set_probe(
    account: Annotated[str, typer.Argument(help="phone or id")],
    probe: Annotated[
        bool, typer.Option("--probe/--action", help="inspection (probe) or action account")
    ] = True,
) -> None:
    """Make the account a probe (inspection) or an action account."""
    account_id = run_on_fleet(lambda fleet: fleet.set_probe(account, probe))
    console.print(f"account {account_id} is now {'a probe' if probe else 'an action'} account")


@app.command()
def reencrypt() -> None:
    """Rewrite every secret still in an older format (Fernet, or another keyring) sealed for its row."""
    summary = run_on_fleet(lambda fleet: fleet.reencrypt())
    console.print(
        f"{summary.rewritten} rewritten, {summary.current} already current, "
        f"{summary.changed_meanwhile} changed meanwhile (run again)"
    )
    if summary.unreadable:
        _fail(f"cannot decrypt the secrets of accounts {', '.join(map(str, summary.unreadable))}", 1)
