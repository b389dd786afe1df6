"""A fake SMM panel on a real local HTTP port, speaking the API `tgops.orders.panel.HttpPanel` expects.

`tgops dev` starts one when TGOPS_PANEL_BASE_URL is not set (its orders kept in `<data_dir>/`, so they
and their ids survive a restart); `tgops panel order` places orders in it. Tests use it directly:
`with FakePanel(api_key="k") as panel: panel.place_order(...)`, then point TGOPS_PANEL_BASE_URL at
`panel.url`; `panel.script(status, body)` makes the next GET or PATCH a canned answer (malformed JSON,
HTTP 500...); `panel.down = True` answers every request 503 until it is set back; `panel.stall_sec`
makes every answer wait that long (a timeout, for a client with a shorter one).

    GET   /orders?status=&service_id=&limit=&offset=    the orders, as HttpPanel reads them
    POST  /orders {"service_id": 1, "link": "https://t.me/durov", "quantity": 100}   -> 201 {"id": 1001}
    PATCH /orders/<id> {"status": ..., "start_count": ..., "remains": ..., "reason": ...}
          with an Idempotency-Key header: applied once per key (a repeat answers 200, applies nothing);
          every applied update is kept in `panel.updates`, in the order it arrived
    POST  /orders/<id>/cancel                            the customer cancels the order
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEV_API_KEY = "dev-panel-key"  # the local fake's own key: it guards nothing worth a secret
FIRST_ORDER_ID = 1001
KEPT_REQUESTS = 1000


@dataclass
class CannedAnswer:
    status: int
    body: str


@dataclass
class FakePanel:
    api_key: str = "fake-panel-key"
    host: str = "127.0.0.1"
    port: int = 0
    state_file: Path | None = None  # where placed orders are kept across restarts; None: in memory only
    orders: dict[int, Any] = field(default_factory=dict)
    requests: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=KEPT_REQUESTS))
    updates: list[dict[str, Any]] = field(default_factory=list)  # {"order_id", "key", "fields"}
    down: bool = False
    stall_sec: float = 0
    _canned: list[CannedAnswer] = field(default_factory=list)
    _applied_keys: set[str] = field(default_factory=set)
    _ids: itertools.count = field(default_factory=lambda: itertools.count(FIRST_ORDER_ID))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the fake panel first"
        return f"http://{self.host}:{self._server.server_address[1]}"

    def place_order(
        self, link: str, *, service_id: int = 1, quantity: int = 100, remains: int | None = None,
        status: str = "validating", order_id: int | None = None,
    ) -> int:  # fmt: skip
        with self._lock:
            order_id = order_id or next(self._ids)
            self.orders[order_id] = {
                "id": order_id, "service_id": service_id, "link": link, "quantity": quantity,
                "remains": quantity if remains is None else remains, "start_count": 0, "status": status,
            }  # fmt: skip
            self._save()
        return order_id

    def add_raw_order(self, item: Any) -> None:
        """An order item exactly as given, however wrong (missing fields, wrong types, not an object)."""
        with self._lock:
            self.orders[-len(self.orders) - 1] = item

    def script(self, status: int, body: str) -> None:
        """The next GET /orders or PATCH /orders/<id> answers this instead."""
        self._canned.append(CannedAnswer(status, body))

    def apply_update(self, order_id: int, key: str, fields: dict[str, Any]) -> bool:
        """Apply one update once per key; False when the order is unknown."""
        with self._lock:
            order = self.orders.get(order_id)
            if not isinstance(order, dict):
                return False
            if key in self._applied_keys:
                return True
            self._applied_keys.add(key)
            known = {
                name: fields[name]
                for name in ("status", "start_count", "remains", "reason")
                if name in fields
            }
            order.update(known)
            self.updates.append({"order_id": order_id, "key": key, "fields": fields})
            self._save()
        return True

    def cancel(self, order_id: int) -> bool:
        with self._lock:
            order = self.orders.get(order_id)
            if not isinstance(order, dict):
                return False
            order["status"] = "canceled"
            self._save()
        return True

    def updates_for(self, order_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return [update["fields"] for update in self.updates if update["order_id"] == order_id]

    def listing(self, status: str | None, service_id: str | None, limit: int, offset: int = 0) -> list[Any]:
        with self._lock:
            items = list(self.orders.values())
        if status:
            items = [item for item in items if not isinstance(item, dict) or item.get("status") == status]
        if service_id:
            items = [
                item
                for item in items
                if not isinstance(item, dict) or str(item.get("service_id")) == service_id
            ]
        return items[offset : offset + limit]

    def start(self) -> FakePanel:
        self._load()
        self._server = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        threading.Thread(target=self._server.serve_forever, name="fake-panel", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakePanel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _load(self) -> None:
        if self.state_file is None or not self.state_file.exists():
            return
        saved = json.loads(self.state_file.read_text())
        self.orders.update({order["id"]: order for order in saved})
        self._ids = itertools.count(max(self.orders, default=FIRST_ORDER_ID - 1) + 1)

    def _save(self) -> None:
        if self.state_file is not None:
            self.state_file.write_text(json.dumps(list(self.orders.values())))


def _handler_for(panel: FakePanel) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet: tests read `panel.requests`
            pass

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {key: values[0] for key, values in parse_qs(parts.query).items()}
            panel.requests.append({"method": "GET", "path": parts.path, "query": query})
            if not self._authorized():
                return
            if parts.path != "/orders":
                return self._answer(404, json.dumps({"error": "not found"}))
            if panel._canned:
                canned = panel._canned.pop(0)
                return self._answer(canned.status, canned.body)
            limit, offset = int(query.get("limit", 1000)), int(query.get("offset", 0))
            listing = panel.listing(query.get("status"), query.get("service_id"), limit, offset)
            self._answer(200, json.dumps({"orders": listing}))

        def do_PATCH(self) -> None:
            path = urlsplit(self.path).path
            panel.requests.append({"method": "PATCH", "path": path})
            if not self._authorized():
                return
            order_id = _order_id_in(path)
            key = self.headers.get("Idempotency-Key")
            if order_id is None or not key:
                return self._answer(400, json.dumps({"error": "PATCH /orders/<id> with an Idempotency-Key"}))
            try:
                fields = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            except ValueError:
                return self._answer(400, json.dumps({"error": "body is not JSON"}))
            if panel._canned:
                canned = panel._canned.pop(0)
                return self._answer(canned.status, canned.body)
            if not isinstance(fields, dict) or not panel.apply_update(order_id, key, fields):
                return self._answer(404, json.dumps({"error": f"no order {order_id}"}))
            self._answer(200, json.dumps({"ok": True}))

        def do_POST(self) -> None:
            if not self._authorized():
                return
            path = urlsplit(self.path).path
            if path.endswith("/cancel") and (order_id := _order_id_in(path.removesuffix("/cancel"))):
                if not panel.cancel(order_id):
                    return self._answer(404, json.dumps({"error": f"no order {order_id}"}))
                return self._answer(200, json.dumps({"ok": True}))
            if path != "/orders":
                return self._answer(404, json.dumps({"error": "not found"}))
            try:
                item = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                order_id = panel.place_order(
                    str(item["link"]),
                    service_id=int(item.get("service_id", 1)),
                    quantity=int(item.get("quantity", 100)),
                )
            except (ValueError, KeyError, TypeError) as error:
                return self._answer(400, json.dumps({"error": f"bad order: {error}"}))
            self._answer(201, json.dumps({"id": order_id}))

        def _authorized(self) -> bool:
            if panel.stall_sec:
                time.sleep(panel.stall_sec)
            if panel.down:
                self._answer(503, "<html><body>503 Service Unavailable</body></html>")
                return False
            if self.headers.get("Authorization") == f"Bearer {panel.api_key}":
                return True
            self._answer(401, json.dumps({"error": "bad api key"}))
            return False

        def _answer(self, status: int, body: str) -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _order_id_in(path: str) -> int | None:
    prefix, _, tail = path.rpartition("/")
    return int(tail) if prefix == "/orders" and tail.isdigit() else None
