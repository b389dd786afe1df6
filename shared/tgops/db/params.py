"""Query parameters that need the driver's types, importing psycopg only when a query is built,
so a Lambda that never reaches Postgres on its path does not pay for the driver at import time."""

from __future__ import annotations

from typing import Any


def jsonb(value: Any) -> Any:
    from psycopg.types.json import Jsonb

    return Jsonb(value)
