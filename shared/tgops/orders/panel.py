"""The SMM panel the orders come from, behind a small interface.

`HttpPanel` speaks this JSON API (a panel with another dialect gets its own `Panel` implementation):

    GET {base_url}/orders?status=<status>&limit=<n>[&service_id=<id>]
    Authorization: Bearer <api key>
    200 {"orders": [{"id": 1, "service_id": 5, "link": "t.me/name", "quantity": 100, "remains": 100,
                     "start_count": 0, "status": "validating"}, ...]}

A response that is not that shape raises `PanelError`; one bad order in a good response is reported
in `PanelPage.malformed` (with its id when it has one) and never hides the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tgops.config import Settings

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

    async def aclose(self) -> None: ...


class HttpPanel:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        page_limit: int = 1000,
        timeout_sec: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._page_limit = page_limit
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
            timeout_sec=settings.panel_timeout_sec,
        )

    async def fetch_orders(self, status: str, service_id: int | None = None) -> PanelPage:
        params: dict[str, str | int] = {"status": status, "limit": self._page_limit}
        if service_id is not None:
            params["service_id"] = service_id
        try:
            response = await self._client.get("/orders", params=params)
        except httpx.HTTPError as error:
            raise PanelError(f"panel unreachable: {type(error).__name__}: {error}") from error
        if response.status_code != 200:
            raise PanelError(
                f"panel answered HTTP {response.status_code}: {response.text[:MAX_ERROR_BODY_CHARS]}"
            )
        try:
            payload = response.json()
        except ValueError:
            raise PanelError(
                f"panel answered a body that is not JSON: {response.text[:MAX_ERROR_BODY_CHARS]!r}"
            ) from None
        return parse_orders(payload)

    async def aclose(self) -> None:
        await self._client.aclose()


def parse_orders(payload: Any) -> PanelPage:
    if not isinstance(payload, dict) or not isinstance(payload.get("orders"), list):
        raise PanelError('panel answer has no "orders" list')
    page = PanelPage()
    for item in payload["orders"]:
        try:
            page.orders.append(PanelOrder.model_validate(item))
        except ValidationError as error:
            page.malformed.append(MalformedOrder(_order_id(item), _describe(error)))
    return page


def _order_id(item: Any) -> str | None:
    order_id = item.get("id") if isinstance(item, dict) else None
    return None if order_id is None else str(order_id)[:64]


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, item['loc'])) or 'order'}: {item['msg']}" for item in error.errors()
    )
