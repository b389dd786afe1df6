"""One logging set-up for every process: Lambda handlers, the Fargate workers, `tgops dev` and the CLI.

Every record, ours and the libraries', goes through one root handler. On AWS (or with
TGOPS_LOG_FORMAT=json) each line is Powertools' JSON, with the `extra=` fields of the call as keys;
locally it is a readable line with those fields appended as `key=value`. No line leaves with a
secret in it: the finished line (message, extra fields, traceback) is redacted of Bot API tokens,
URL passwords, Telethon session strings and the configured secrets of Settings. httpx and httpcore
log every request URL, which for the Bot API carries the token; they are kept at WARNING.

Every line also carries the fields of the current correlation scope (tgops.correlation): the request,
message or scheduled run it belongs to and the domain ids bound so far. A filter reading a context
variable, rather than Powertools Logger's `append_keys`, because keys appended to a logger are shared by
every task of the process, and a worker runs several jobs at once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from typing import TYPE_CHECKING, TextIO

from pydantic import SecretStr

from tgops.correlation import CorrelationFilter

if TYPE_CHECKING:
    from tgops.config import Settings

REDACTED = "***"
# Request-by-request lines; Mangum's access line is tgops.api.correlation's, with the request id.
QUIET_LIBRARIES = ("httpx", "httpcore", "werkzeug", "botocore", "urllib3", "mangum")
MIN_SECRET_LENGTH = 6  # shorter values would redact ordinary words
CONSOLE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
STANDARD_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)

_PATTERNS = (
    # A Bot API token, in a URL (`/bot<id>:<secret>/getChat`) or alone: the bot id stays readable.
    (re.compile(r"(?<![\w])(bot)?(\d{3,}):[A-Za-z0-9_-]{20,}"), rf"\1\2:{REDACTED}"),
    # The password of a URL: postgresql://user:password@host
    (re.compile(r"(\w+://[^\s:/@]+):[^\s@/]+@"), rf"\1:{REDACTED}@"),
    # A Telethon StringSession (version "1" and a long base64 run) or any other long key-like blob.
    (re.compile(r"(?<![A-Za-z0-9+/_=-])[A-Za-z0-9+/_=-]{200,}"), REDACTED),
)


class Redactor:
    """Removes the secrets from a finished log line."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = set()
        for secret in secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                forms |= {
                    secret,
                    json.dumps(secret, ensure_ascii=False)[1:-1],
                }  # as is, and as JSON writes it
        self._secrets = sorted(forms, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for pattern, replacement in _PATTERNS:  # first, so a known bot token keeps its readable bot id
            text = pattern.sub(replacement, text)
        for secret in self._secrets:
            text = text.replace(secret, REDACTED)
        return text


class RedactingFilter(logging.Filter):
    """Redacts a record where it is made, for the loggers that print request URLs (a Bot API URL holds its
    token): every handler then sees it clean, including ones tgops did not set up (pytest's, a library's)."""

    _patterns_only = Redactor()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self._patterns_only.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


# The loggers that print request URLs: httpx (every request, at INFO) and python-telegram-bot's own.
URL_LOGGERS = ("httpx", "telegram.Bot", "telegram.BaseRequest", "telegram.HTTPXRequest", "telegram.ext")


def redact_request_loggers() -> None:
    """Put a RedactingFilter on each URL logger once (the Bot API client calls it when imported)."""
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
            logger.addFilter(RedactingFilter())


class RedactingHandler(logging.StreamHandler):
    """The one handler of the process. Redacting the finished line, rather than the record, also
    catches what a formatter adds later: the traceback and the serialized extra fields."""

    def __init__(self, stream: TextIO | None, redactor: Redactor) -> None:
        super().__init__(stream)
        self.redactor = redactor
        self._fixed_stream = stream

    @property
    def stream(self) -> TextIO:
        """The given stream, else the standard one of the moment (as logging.lastResort does), so a
        replaced sys.stderr (a test runner's capture) is followed rather than written to once closed."""
        if self._fixed_stream is not None:
            return self._fixed_stream
        return sys.stdout if on_aws() else sys.stderr

    @stream.setter
    def stream(self, value: TextIO) -> None:
        self._fixed_stream = value

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.redact(super().format(record))


class ConsoleFormatter(logging.Formatter):
    """`10:09:23 INFO tgops.orders.polling: order skipped order_id=5 reason=...`"""

    def __init__(self) -> None:
        super().__init__(CONSOLE_FORMAT, datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {key: value for key, value in vars(record).items() if key not in STANDARD_RECORD_ATTRIBUTES}
        if not extras:
            return line
        first, newline, rest = line.partition("\n")  # the fields go on the message line, before a traceback
        fields = " ".join(f"{key}={_console_value(value)}" for key, value in extras.items())
        return f"{first} {fields}{newline}{rest}"


def _console_value(value: object) -> str:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False) if (" " in value or not value) else value
    return json.dumps(value, default=str, ensure_ascii=False)


def configure_logging(
    settings: Settings | None,
    *,
    service: str,
    stream: TextIO | None = None,
    extra_secrets: Iterable[str] = (),
) -> None:
    """Route every logger of the process through one redacting handler; call it again to reconfigure.

    `service` names the process (on AWS, POWERTOOLS_SERVICE_NAME wins). Without settings (they did not
    load) it logs at INFO and redacts what the patterns find.
    """
    level = settings.log_level if settings else "INFO"
    json_lines = _wants_json(settings)
    redactor = Redactor([*configured_secrets(settings), *extra_secrets])
    handler = RedactingHandler(stream, redactor)
    handler.addFilter(CorrelationFilter())
    handler.setFormatter(_json_formatter(service) if json_lines else ConsoleFormatter())
    root = logging.getLogger()
    for previous in root.handlers[:]:  # the Lambda runtime's, or ours from a previous call
        if not type(previous).__module__.startswith("_pytest"):  # as Powertools does: caplog keeps working
            root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING)


def configured_secrets(settings: Settings | None) -> list[str]:
    """Every SecretStr value of the settings (placeholders and empty values are not secrets)."""
    from tgops.config import PLACEHOLDER

    if settings is None:
        return []
    values = [getattr(settings, name) for name in type(settings).model_fields]
    return [
        value.get_secret_value()
        for value in values
        if isinstance(value, SecretStr) and value.get_secret_value() not in ("", PLACEHOLDER)
    ]


def on_aws() -> bool:
    """A Lambda function or an ECS task (the Fargate workers)."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME") or os.environ.get("ECS_CONTAINER_METADATA_URI_V4"))


def _wants_json(settings: Settings | None) -> bool:
    chosen = settings.log_format if settings else "auto"
    return chosen == "json" or (chosen == "auto" and on_aws())


def _json_formatter(service: str) -> logging.Formatter:
    from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter

    return LambdaPowertoolsFormatter(service=os.environ.get("POWERTOOLS_SERVICE_NAME") or service, utc=True)
