"""`tgops bot set-webhook URL` and `tgops bot info`: the main bot's webhook at Telegram."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from tgops.cli.support import console, load_settings, one_line_errors

app = typer.Typer(help="The main bot: its webhook at Telegram.", no_args_is_help=True)


def _main_bot():
    from telegram import Bot

    from tgops.telegram.bot_client import has_real_token

    settings = load_settings()
    token = settings.telegram_bot_token.get_secret_value()
    if not has_real_token(token):
        console.print("[red]error:[/red] TGOPS_TELEGRAM_BOT_TOKEN: not set")
        raise typer.Exit(2)
    return settings, Bot(token, base_url=settings.telegram_bot_api_base_url)


@app.command("set-webhook")
def set_webhook(
    url: Annotated[
        str, typer.Argument(help="public base URL of the API, e.g. https://abc.execute-api...amazonaws.com")
    ],
) -> None:
    """Point the main bot's webhook at URL/api/webhooks/telegram, with its secret and allowed_updates."""
    from telegram.error import TelegramError

    from tgops.config import PLACEHOLDER
    from tgops.ingress.routing import ALLOWED_UPDATES

    settings, bot = _main_bot()
    secret = settings.telegram_webhook_secret.get_secret_value()
    if secret in ("", PLACEHOLDER):
        console.print("[red]error:[/red] TGOPS_TELEGRAM_WEBHOOK_SECRET: not set")
        raise typer.Exit(2)
    target = url.rstrip("/") + "/api/webhooks/telegram"
    with one_line_errors():
        try:
            asyncio.run(bot.set_webhook(target, secret_token=secret, allowed_updates=list(ALLOWED_UPDATES)))
        except TelegramError as error:
            console.print(f"[red]error:[/red] Telegram refused setWebhook: {error.message}")
            raise typer.Exit(1) from None
    print(f"webhook set to {target} (updates: {', '.join(ALLOWED_UPDATES)})")


@app.command()
def info() -> None:
    """getWebhookInfo: where Telegram sends updates, how many wait, the last error."""
    from telegram.error import TelegramError

    _, bot = _main_bot()
    try:
        webhook = asyncio.run(bot.get_webhook_info())
    except TelegramError as error:
        console.print(f"[red]error:[/red] Telegram refused getWebhookInfo: {error.message}")
        raise typer.Exit(1) from None
    fields = ("url", "pending_update_count", "last_error_date", "last_error_message", "allowed_updates")
    print(json.dumps({name: _plain(getattr(webhook, name, None)) for name in fields}, indent=2))


def _plain(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return list(value) if isinstance(value, tuple) else value
