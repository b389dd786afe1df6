"""The SMM panel the orders come from, behind a small interface.

`HttpPanel` speaks this JSON API (a panel with another dialect gets its own `Panel` implementation):

    GET {base_url}/orders?status=<status>&limit=<n>&offset=<k>[&service_id=<id>]
    Authorization: Bearer <api key>
    200 {"orders": [{"id": 1, "service_id": 5, "link": "t.me/name", "quantity": 100, "remains": 100,
                     "start_count": 0, "status": "validating"}, ...]}

    PATCH {base_url}/orders/<id>     Idempotency-Key: <key>
    {"status": "in_progress", "start_count": 1200, "remains": 40, "reason": null}   -> 2xx

`fetch_orders` reads every page (a page shorter than the limit is the last). A response that is not
that shape raises `PanelError`; one bad order in a good response is reported in `PanelPage.malformed`
(with its id when it has one) and never hides the others. `update_order` raises `PanelError` unless
the panel answers 2xx; the same key sent twice must be applied once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tgops.config import Settings
from tgops.validation import describe

OrderStatus = Literal[
    "validating", "depends_ok", "depends_failed", "awaiting", "in_progress", "pending",
    "completed", "partial", "canceled",
]  # fmt: skip
MAX_ERROR_BODY_CHARS = 200
BIGINT_MAX = 2**63 - 1
INT_MAX = 2**31 - 1


class PanelError(Exception):
    """The panel could not be asked, or answered something that is not an order list."""


class PanelOrder(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    id: int = Field(gt=0, le=BIGINT_MAX)
    service_id: int = Field(gt=0, le=BIGINT_MAX)
    link: str = Field(max_length=4096)
    quantity: int = Field(ge=0, le=INT_MAX)
    remains: int = Field(ge=-INT_MAX, le=INT_MAX)
    start_count: int | None = Field(None, ge=-INT_MAX, le=INT_MAX)
    status: OrderStatus

    @field_validator("status", mode="before")
    @classmethod
    def _panel_spelling(cls, value: Any) -> Any:
        # Panels write "In progress" as often as "in_progress".
        return value.strip().lower().replace(" ", "_") if isinstance(value, str) else value


@dataclass(frozen=True)
class MalformedOrder:
    order_id: str | None
    reason: str


@dataclass(frozen=True)
class PanelPage:
    orders: list[PanelOrder] = field(default_factory=list)
    malformed: list[MalformedOrder] = field(default_factory=list)


class Panel(Protocol):
    async def fetch_orders(self, status: str, service_id: int | None = None) -> PanelPage: ...

    async def update_order(self, order_id: int, fields: dict[str, Any], idempotency_key: str) -> None: ...

    async def aclose(self) -> None: ...


class HttpPanel:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        page_limit: int = 1000,
        max_pages: int = 1000,
        timeout_sec: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._page_limit = page_limit
        self._max_pages = max_pages
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=timeout_sec,
            transport=transport,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> HttpPanel:
        if not settings.panel_base_url or settings.panel_api_key is None:
            raise PanelError("TGOPS_PANEL_BASE_URL and TGOPS_PANEL_API_KEY must be set to poll orders")
        return cls(
            settings.panel_base_url,
            settings.panel_api_key.get_secret_value(),
            page_limit=settings.panel_page_limit,
            max_pages=settings.panel_max_pages,
            timeout_sec=settings.panel_timeout_sec,
        )

    async def fetch_orders(self, status: str, service_id: int | None = None) -> PanelPage:
        every = PanelPage()
        seen: set[int] = set()
        for page_number in range(self._max_pages):
            params: dict[str, str | int] = {
                "status": status,
                "limit": self._page_limit,
                "offset": page_number * self._page_limit,
            }
            if service_id is not None:
                params["service_id"] = service_id
            payload = await self._json(await self._request("GET", "/orders", params=params))
            items, page = _order_items(payload), parse_orders(payload)
            fresh = [order for order in page.orders if order.id not in seen]
            if page.orders and not fresh:
                break  # a panel that ignores the offset answers the first page again
            seen.update(order.id for order in fresh)
            every.orders.extend(fresh)
            every.malformed.extend(page.malformed)
            if len(items) < self._page_limit:
                break
        return every

    async def update_order(self, order_id: int, fields: dict[str, Any], idempotency_key: str) -> None:
        response = await self._request(
            "PATCH", f"/orders/{order_id}", json=fields, headers={"Idempotency-Key": idempotency_key}
        )
        if not 200 <= response.status_code < 300:
            raise PanelError(
                f"panel answered HTTP {response.status_code}: {response.text[:MAX_ERROR_BODY_CHARS]}"
            )

    async def _request(self, method: str, path: str, **options: Any) -> httpx.Response:
        try:
            return await self._client.request(method, path, **options)
        except httpx.HTTPError as error:
            raise PanelError(f"panel unreachable: {type(error).__name__}: {error}") from error

    @staticmethod
    async def _json(response: httpx.Response) -> Any:
        if response.status_code != 200:
            raise PanelError(
                f"panel answered HTTP {response.status_code}: {response.text[:MAX_ERROR_BODY_CHARS]}"
            )
        try:
            return response.json()
        except ValueError:
            raise PanelError(
                f"panel answered a body that is not JSON: {response.text[:MAX_ERROR_BODY_CHARS]!r}"
            ) from None

    async def aclose(self) -> None:
        await self._client.aclose()


def _order_items(payload: Any) -> list[Any]:
    if not isinstance(payload, dict) or not isinstance(payload.get("orders"), list):
        raise PanelError('panel answer has no "orders" list')
    return payload["orders"]


def parse_orders(payload: Any) -> PanelPage:
    page = PanelPage()
    for item in _order_items(payload):
        try:
            page.orders.append(PanelOrder.model_validate(item))
        except ValidationError as error:
            page.malformed.append(MalformedOrder(_order_id(item), describe(error, whole="order")))
    return page


def _order_id(item: Any) -> str | None:
    order_id = item.get("id") if isinstance(item, dict) else None
    return None if order_id is None else str(order_id)[:64]
