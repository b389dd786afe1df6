"""A fake Telegram Bot API server over real HTTP (http.server in a thread), for the tests and the bench.

It records every call per token and chat with the time it arrived, answers in Telegram's JSON, and
answers errors on request: queue them for a chat (`fail_next`), or give a `policy` deciding per call
(the bench's random 429s and 403s). Errors carry Telegram's descriptions and `parameters`, so
python-telegram-bot raises its real types (RetryAfter, Forbidden, BadRequest, ChatMigrated).
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

TEXT_FIELDS = {"text", "caption", "photo", "url", "secret_token", "parse_mode"}

Reply = tuple[int, dict[str, Any]]


def error(status: int, description: str, **parameters: Any) -> Reply:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return status, body


def too_many_requests(retry_after: int = 1) -> Reply:
    return error(429, f"Too Many Requests: retry after {retry_after}", retry_after=retry_after)


def kicked() -> Reply:
    return error(403, "Forbidden: bot was kicked from the supergroup chat")


def blocked() -> Reply:
    return error(403, "Forbidden: bot was blocked by the user")


def chat_not_found() -> Reply:
    return error(400, "Bad Request: chat not found")


def migrated(new_chat_id: int) -> Reply:
    return error(
        400, "Bad Request: group chat was upgraded to a supergroup chat", migrate_to_chat_id=new_chat_id
    )


@dataclass(frozen=True)
class Call:
    token: str
    method: str
    params: dict[str, Any]
    at: float  # time.time() when the request arrived
    status: int = 200

    @property
    def chat_id(self) -> int | None:
        value = self.params.get("chat_id")
        return value if isinstance(value, int) else None


Policy = Callable[[str, str, dict[str, Any]], Reply | None]


@dataclass
class FakeBotApi:
    policy: Policy | None = None  # (token, method, params) -> an error reply, or None to answer normally
    calls: list[Call] = field(default_factory=list)
    member_counts: dict[int, int] = field(default_factory=dict)
    administrators: dict[int, list[int]] = field(default_factory=dict)  # chat -> admin user ids
    members: dict[tuple[int, int], str] = field(default_factory=dict)  # (chat, user) -> status
    pending_join_requests: dict[int, int] = field(default_factory=dict)  # chat -> waiting on its invite link
    _queued: dict[int | None, list[Reply]] = field(default_factory=lambda: defaultdict(list))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _message_ids: itertools.count = field(default_factory=lambda: itertools.count(1000))
    _sent: set[tuple[int, int]] = field(default_factory=set)
    _deleted: set[tuple[int, int]] = field(default_factory=set)
    _decided: set[tuple[int, int]] = field(default_factory=set)
    _server: ThreadingHTTPServer | None = None

    # --- scripting ---

    def fail_next(self, chat_id: int | None, *replies: Reply) -> None:
        """The next calls to `chat_id` (None: to no chat) get these replies, in order."""
        with self._lock:
            self._queued[chat_id].extend(replies)

    def delete_by_hand(self, chat_id: int, message_id: int) -> None:
        """Someone deleted the message in Telegram itself."""
        with self._lock:
            self._deleted.add((chat_id, message_id))

    # --- reading what happened ---

    def calls_to(self, method: str, token: str | None = None) -> list[Call]:
        with self._lock:
            return [c for c in self.calls if c.method == method and (token is None or c.token == token)]

    def delivered(self, token: str | None = None) -> list[Call]:
        """Messages Telegram accepted (sendMessage and sendPhoto answered 200)."""
        return [
            call
            for method in ("sendMessage", "sendPhoto")
            for call in self.calls_to(method, token)
            if call.status == 200
        ]

    # --- serving ---

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://127.0.0.1:{self._server.server_address[1]}/bot"

    def start(self) -> FakeBotApi:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, body = fake._answer(self.path, self.headers.get("Content-Type", ""), raw)
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                return  # the path holds the token: never print it

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBotApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _answer(self, path: str, content_type: str, raw: bytes) -> Reply:
        arrived = time.time()
        _, _, rest = path.partition("/bot")
        token, _, method = rest.partition("/")
        params = _params(content_type, raw)
        chat_id = params.get("chat_id") if isinstance(params.get("chat_id"), int) else None
        with self._lock:
            reply = self._queued[chat_id].pop(0) if self._queued.get(chat_id) else None
            if reply is None and self.policy is not None:
                reply = self.policy(token, method, params)
            if reply is None:
                reply = self._result(method, params)
            self.calls.append(Call(token, method, params, arrived, reply[0]))
        return reply

    def _result(self, method: str, params: dict[str, Any]) -> Reply:
        chat_id = params.get("chat_id")
        chat = {
            "id": chat_id,
            "type": "supergroup" if isinstance(chat_id, int) and chat_id < 0 else "private",
        }
        if method in ("sendMessage", "sendPhoto"):
            message_id = next(self._message_ids)
            self._sent.add((chat_id, message_id))
            return _ok({"message_id": message_id, "date": int(time.time()), "chat": chat})
        if method == "deleteMessage":
            message = (chat_id, params.get("message_id"))
            if message not in self._sent or message in self._deleted:
                return error(400, "Bad Request: message to delete not found")
            self._deleted.add(message)
            return _ok(True)
        if method in ("approveChatJoinRequest", "declineChatJoinRequest"):
            request = (chat_id, params.get("user_id"))
            if request in self._decided:
                return error(400, "Bad Request: HIDE_REQUESTER_MISSING")
            self._decided.add(request)
            return _ok(True)
        if method == "getChatMemberCount":
            return _ok(self.member_counts.get(chat_id, 0))
        if method == "getChatAdministrators":
            return _ok(
                [_member(user_id, "administrator") for user_id in self.administrators.get(chat_id, [])]
            )
        if method == "getChatMember":
            user_id = params.get("user_id")
            status = "administrator" if user_id in self.administrators.get(chat_id, []) else None
            return _ok(_member(user_id, status or self.members.get((chat_id, user_id), "member")))
        if method == "editChatInviteLink":
            return _ok(
                {
                    "invite_link": params.get("invite_link"),
                    "creator": {"id": 4242, "is_bot": True, "first_name": "fake"},
                    "creates_join_request": True,
                    "is_primary": False,
                    "is_revoked": False,
                    "pending_join_request_count": self.pending_join_requests.get(chat_id, 0),
                }
            )
        if method == "getMe":
            return _ok({"id": 4242, "is_bot": True, "first_name": "fake", "username": "fake_bot"})
        return _ok(True)  # setWebhook, banChatMember, unbanChatMember, ...


def _ok(result: Any) -> Reply:
    return 200, {"ok": True, "result": result}


def _member(user_id: Any, status: str) -> dict[str, Any]:
    member: dict[str, Any] = {"status": status, "user": {"id": user_id, "is_bot": False, "first_name": "u"}}
    if status == "administrator":
        member |= {
            "can_be_edited": False,
            "is_anonymous": False,
            "can_manage_chat": True,
            "can_delete_messages": True,
            "can_manage_video_chats": True,
            "can_restrict_members": True,
            "can_promote_members": False,
            "can_change_info": True,
            "can_invite_users": True,
            "can_post_stories": False,
            "can_edit_stories": False,
            "can_delete_stories": False,
        }
    return member


def _params(content_type: str, raw: bytes) -> dict[str, Any]:
    """python-telegram-bot posts form fields whose non-text values are JSON; decode those."""
    if content_type.startswith("application/json"):
        return json.loads(raw or b"{}")
    params: dict[str, Any] = {}
    for name, value in parse_qsl(raw.decode(), keep_blank_values=True):
        if name in TEXT_FIELDS:
            params[name] = value
            continue
        try:
            params[name] = json.loads(value)
        except ValueError:
            params[name] = value
    return params
