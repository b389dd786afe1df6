"""A fake HTTP boundary for python-telegram-bot: canned Bot API answers per method, or raised telegram.error types.

Pass it as `request=` to telegram.Bot; python-telegram-bot itself turns status codes into its errors
(400 -> BadRequest, 403 -> Forbidden, 429 -> RetryAfter).
"""

from __future__ import annotations

import json
from typing import Any

from telegram.request import BaseRequest, RequestData


class FakeBotApiHttp(BaseRequest):
    def __init__(self) -> None:
        self.answers: dict[str, list[tuple[int, dict[str, Any]] | Exception]] = {}
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def answer(self, method: str, *replies: dict[str, Any] | tuple[int, dict[str, Any]] | Exception) -> None:
        """Queue replies for `method`: a result dict (200), a (status, body) pair, or an exception to raise."""
        self.answers.setdefault(method, []).extend(
            reply if isinstance(reply, (tuple, Exception)) else (200, {"ok": True, "result": reply})
            for reply in replies
        )

    @property
    def read_timeout(self) -> float | None:
        return 5.0

    async def initialize(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout=None,
        write_timeout=None,
        connect_timeout=None,
        pool_timeout=None,
    ) -> tuple[int, bytes]:
        name = url.rsplit("/", 1)[-1]
        self.requests.append((name, request_data.parameters if request_data else {}))
        queued = self.answers.get(name)
        if not queued:
            return 400, json.dumps(
                {"ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
            ).encode()
        reply = queued.pop(0) if len(queued) > 1 else queued[0]
        if isinstance(reply, Exception):
            raise reply
        status, body = reply
        return status, json.dumps(body).encode()


def error(status: int, description: str, **parameters: Any) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return status, body
