"""tgops.logs: one set-up for every process; extra fields reach the line, secrets never do.

The Bot API calls go through python-telegram-bot and httpx to a small local server that answers as
the Bot API does; every line the configured logging emits, the libraries' included, is scanned.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import telegram
from telegram.error import TelegramError
from telethon.crypto import AuthKey
from telethon.sessions import StringSession

from tgops.config import Settings
from tgops.logs import REDACTED, configure_logging

BOT_ID = 7012345678
TOKEN = f"{BOT_ID}:AAHk3x_9QvZr-secretpartOfTheToken12"
PROVIDER_TOKEN = "provider-token-5f1c9a"
log = logging.getLogger("tgops.test_logs")


class FakeBotApi(BaseHTTPRequestHandler):
    """Answers getMe and getChat the way api.telegram.org does; anything else is a Bot API error."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        endpoint = self.path.rsplit("/", 1)[-1]
        results = {
            "getMe": {"id": BOT_ID, "is_bot": True, "first_name": "Test", "username": "tgops_test_bot"},
            "getChat": {"id": -1001234567890, "type": "channel", "title": "News", "accent_color_id": 1,
                        "max_reaction_count": 11},
        }  # fmt: skip
        if endpoint in results:
            status, body = 200, {"ok": True, "result": results[endpoint]}
        else:
            status, body = 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: object) -> None:  # the server's own access lines are not under test
        pass


@pytest.fixture
def bot_api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeBotApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/bot"
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name in ("httpx", "httpcore", "telegram"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def _settings(log_format: str) -> Settings:
    return Settings(
        log_level="DEBUG", log_format=log_format, telegram_bot_token=TOKEN, provider_token=PROVIDER_TOKEN
    )


def _configured(log_format: str, *, libraries_at_debug: bool = False) -> io.StringIO:
    captured = io.StringIO()
    configure_logging(_settings(log_format), service="test", stream=captured)
    if libraries_at_debug:  # someone debugging turns them up: the lines are still redacted
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).setLevel(logging.DEBUG)
    return captured


async def _call_the_bot_api(base_url: str) -> None:
    async with telegram.Bot(TOKEN, base_url=base_url) as bot:
        chat = await bot.get_chat("@news")
        log.info("looked up %s", chat.title, extra={"chat_id": chat.id, "bot_url": bot.base_url})
        try:
            await bot.get_chat_member_count("@missing")
        except TelegramError as error:
            log.exception(
                "getChatMemberCount failed at %s", f"{base_url}{TOKEN}", extra={"reason": str(error)}
            )


@pytest.mark.parametrize("log_format", ["json", "console"])
@pytest.mark.parametrize("libraries_at_debug", [False, True], ids=["default", "httpx-at-debug"])
async def test_a_real_bot_api_call_at_debug_logs_no_token(bot_api_url, log_format, libraries_at_debug):
    captured = _configured(log_format, libraries_at_debug=libraries_at_debug)

    await _call_the_bot_api(bot_api_url)

    output = captured.getvalue()
    secret_part = TOKEN.split(":", 1)[1]
    assert "Calling Bot API endpoint `getChat`" in output  # python-telegram-bot's own debug lines are there
    assert "looked up News" in output and "getChatMemberCount failed" in output
    assert f"bot{BOT_ID}:{REDACTED}" in output  # the URL stays readable, its secret does not
    if libraries_at_debug:
        assert "HTTP Request: POST" in output  # httpx's request line, with the URL, was emitted
    assert secret_part not in output, [line for line in output.splitlines() if secret_part in line]


def test_the_libraries_request_lines_are_quiet_by_default(bot_api_url):
    import asyncio

    captured = _configured("console")

    asyncio.run(_call_the_bot_api(bot_api_url))

    assert "HTTP Request" not in captured.getvalue()
    assert logging.getLogger("httpx").getEffectiveLevel() == logging.WARNING


def test_configured_secrets_session_strings_and_url_passwords_are_redacted():
    session = StringSession()
    session.set_dc(2, "149.154.167.51", 443)
    session.auth_key = AuthKey(os.urandom(256))
    session_string = session.save()
    captured = _configured("json")

    log.info("provider token is %s", PROVIDER_TOKEN)
    log.warning("session %s stored", session_string, extra={"session": session_string})
    log.error("cannot reach postgresql://tgops:hunter2secret@db.example.com:5432/postgres")

    output = captured.getvalue()
    for secret in (PROVIDER_TOKEN, session_string, "hunter2secret"):
        assert secret not in output
    assert "postgresql://tgops:***@db.example.com" in output


def test_extra_fields_reach_the_json_line():
    captured = _configured("json")

    log.info("order skipped", extra={"order_id": 42, "reason": "dispatch_dedupe", "rid": "r-1"})

    line = json.loads(captured.getvalue().strip().splitlines()[-1])
    assert line["message"] == "order skipped"
    assert (line["order_id"], line["reason"], line["rid"], line["service"]) == (
        42,
        "dispatch_dedupe",
        "r-1",
        "test",
    )


def test_extra_fields_reach_the_console_line():
    captured = _configured("console")

    log.warning("account cooled down", extra={"account_id": 7, "proxy_key": "p1", "reason": "FLOOD_WAIT 30"})

    line = captured.getvalue().strip().splitlines()[-1]
    assert line.endswith(
        'tgops.test_logs: account cooled down account_id=7 proxy_key=p1 reason="FLOOD_WAIT 30"'
    )


def test_on_aws_the_lines_are_json_on_stdout_named_by_powertools_service(monkeypatch, capsys):
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "tgops-poll-orders")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "tgops")

    configure_logging(Settings(), service="poll_orders")
    log.info("polled", extra={"orders": 3})

    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert (line["service"], line["message"], line["orders"]) == ("tgops", "polled", 3)


HANDLERS = sorted((Path(__file__).resolve().parents[1] / "functions").glob("*/app.py"))
ROOT_HANDLERS_AFTER_IMPORT = """
import importlib.util, logging, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
spec.loader.exec_module(importlib.util.module_from_spec(spec))
print([type(handler).__name__ for handler in logging.getLogger().handlers])
"""


@pytest.mark.parametrize("handler", HANDLERS, ids=[path.parent.name for path in HANDLERS])
def test_every_lambda_handler_logs_through_the_redacting_handler(handler, tmp_path):
    env = {name: value for name, value in os.environ.items() if not name.startswith(("TGOPS_", "AWS_"))}
    result = subprocess.run(
        [sys.executable, "-c", ROOT_HANDLERS_AFTER_IMPORT, str(handler)],
        cwd=tmp_path,
        env=env | {"TGOPS_ENV": "development", "AWS_DEFAULT_REGION": "us-east-1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['RedactingHandler']"
