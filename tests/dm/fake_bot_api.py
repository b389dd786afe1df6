"""A Bot API server for the DM bot's tests: real HTTP on 127.0.0.1, one thread, recording every call.

Point `TGOPS_TELEGRAM_BOT_API_BASE_URL` at `server.base_url`. Tokens in `valid_tokens` are accepted (any
other answers 401, as Telegram does for a revoked token); chats in `blocked` answer 403; `members` gives
getChatMember's status per (chat, user) (default "member"); `managed_tokens` answers getManagedBotToken.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

ADMIN_RIGHTS = (
    "can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
    "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
    "can_edit_stories", "can_delete_stories",
)  # fmt: skip
MEMBER_FIELDS: dict[str, dict[str, Any]] = {
    "administrator": dict.fromkeys(ADMIN_RIGHTS, True),
    "creator": {"is_anonymous": False},
}


@dataclass
class Call:
    token: str
    method: str
    params: dict[str, Any]


@dataclass
class FakeBotApi:
    valid_tokens: set[str] = field(default_factory=set)
    blocked: set[int] = field(default_factory=set)
    members: dict[tuple[int, int], str] = field(default_factory=dict)
    managed_tokens: dict[int, str] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    _next_message_id: int = 1000

    def start(self) -> FakeBotApi:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode()
                status, body = fake.answer(self.path, self.headers.get("Content-Type", ""), raw)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/bot"

    def calls_to(self, method: str, token: str | None = None) -> list[Call]:
        return [
            call for call in self.calls if call.method == method and (token is None or call.token == token)
        ]

    def answer(self, path: str, content_type: str, raw: str) -> tuple[int, dict[str, Any]]:
        token, _, method = path.removeprefix("/bot").partition("/")
        params = _decode(content_type, raw)
        self.calls.append(Call(token, method, params))
        if token not in self.valid_tokens:
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        chat_id = params.get("chat_id")
        if chat_id is not None and int(chat_id) in self.blocked:
            return 403, {
                "ok": False,
                "error_code": 403,
                "description": "Forbidden: bot was blocked by the user",
            }
        return 200, {"ok": True, "result": self._result(token, method, params)}

    def _result(self, token: str, method: str, params: dict[str, Any]) -> Any:
        bot_id = int(token.split(":", 1)[0])
        if method == "getMe":
            return {"id": bot_id, "is_bot": True, "first_name": "Test bot", "username": f"bot{bot_id}_bot"}
        if method in ("sendMessage", "editMessageText"):
            self._next_message_id += 1
            chat = {
                "id": int(params["chat_id"]),
                "type": "private" if int(params["chat_id"]) > 0 else "supergroup",
            }
            return {"message_id": params.get("message_id", self._next_message_id), "date": 0, "chat": chat,
                    "text": params.get("text", "")}  # fmt: skip
        if method == "getChatMember":
            key = (int(params["chat_id"]), int(params["user_id"]))
            user = {"id": key[1], "is_bot": key[1] == bot_id, "first_name": "someone"}
            status = self.members.get(key, "member")
            return {"status": status, "user": user, **MEMBER_FIELDS.get(status, {})}
        if method == "getManagedBotToken":
            return self.managed_tokens[int(params["user_id"])]
        if method == "getWebhookInfo":
            return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}
        return True


def _decode(content_type: str, raw: str) -> dict[str, Any]:
    if "json" in content_type:
        return json.loads(raw or "{}")
    params: dict[str, Any] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        try:
            params[name] = json.loads(value)
        except ValueError:
            params[name] = value
    return params
