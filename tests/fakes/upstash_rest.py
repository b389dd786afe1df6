"""An in-process stand-in for Upstash's Redis REST endpoint, passing every command to a real Redis.

It speaks what upstash-redis sends: `POST /` with the command as a JSON array and
`Authorization: Bearer <token>`. With `Upstash-Encoding: base64`, every string in the result comes
base64-encoded except the status reply "OK". Answers are `{"result": ...}`, or `{"error": "<redis
error>"}` with HTTP 400 (401 for a wrong token). `outage = True` makes it answer 503 with a
plain-text body, as a load balancer in front of a dead service would.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit


class RedisReplyError(Exception):
    """Redis answered with an error reply; the message is Redis's own, code included ("NOSCRIPT ...")."""


class Status(str):
    """A RESP simple string ("+OK", "+PONG"), as opposed to a bulk string."""


class RespConnection:
    """Just enough RESP2 to send a command and read its reply, error codes intact."""

    def __init__(self, redis_url: str) -> None:
        parts = urlsplit(redis_url)
        self._socket = socket.create_connection((parts.hostname, parts.port or 6379))
        self._stream = self._socket.makefile("rb")
        if parts.password:
            self.call(["AUTH", parts.password])
        if parts.path.strip("/") not in ("", "0"):
            self.call(["SELECT", parts.path.strip("/")])

    def call(self, command: list) -> Any:
        words = [str(word).encode() for word in command]
        frame = b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(word), word) for word in words)
        self._socket.sendall(frame)
        return self._read()

    def _read(self) -> Any:
        line = self._stream.readline()[:-2]
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return Status(rest.decode())
        if kind == b"-":
            raise RedisReplyError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            length = int(rest)
            return None if length < 0 else self._stream.read(length + 2)[:-2]
        if kind == b"*":
            length = int(rest)
            return None if length < 0 else [self._read() for _ in range(length)]
        raise RedisReplyError(f"unexpected reply {line!r}")

    def close(self) -> None:
        self._stream.close()
        self._socket.close()


def to_json(reply: Any, base64_encoded: bool) -> Any:
    if isinstance(reply, list):
        return [to_json(item, base64_encoded) for item in reply]
    if isinstance(reply, Status) and reply == "OK":
        return "OK"
    if isinstance(reply, str):
        reply = reply.encode()
    if isinstance(reply, bytes):
        return base64.b64encode(reply).decode() if base64_encoded else reply.decode()
    return reply


class ShimServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the default 5 resets connections when many tasks call at once


class UpstashRestShim:
    def __init__(self, redis_url: str, token: str) -> None:
        self.redis_url = redis_url
        self.token = token
        self.outage = False
        self._server: ShimServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_port}"

    def start(self) -> str:
        handler = type("Handler", (UpstashRequestHandler,), {"shim": self})
        self._server = ShimServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self.url

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class UpstashRequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so one Redis connection serves one client connection
    disable_nagle_algorithm = True  # headers and body go out in two writes; Nagle would hold the second
    shim: UpstashRestShim

    def setup(self) -> None:
        super().setup()
        self._redis: RespConnection | None = None

    def finish(self) -> None:
        super().finish()
        if self._redis:
            self._redis.close()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.shim.outage:
            return self._send(503, b"Service Unavailable", "text/plain")
        if self.headers.get("Authorization") != f"Bearer {self.shim.token}":
            return self._send_json(401, {"error": "WRONGPASS invalid or missing auth token"})
        if self.path != "/":
            return self._send_json(404, {"error": f"the shim serves single commands only, not {self.path}"})
        self._redis = self._redis or RespConnection(self.shim.redis_url)
        try:
            reply = self._redis.call(json.loads(body))
        except RedisReplyError as error:
            return self._send_json(400, {"error": str(error)})
        base64_encoded = self.headers.get("Upstash-Encoding") == "base64"
        self._send_json(200, {"result": to_json(reply, base64_encoded)})

    def _send_json(self, status: int, payload: dict) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass
