"""Correlation ids: one id per unit of work, carried end to end and put on every log line of its path.

Where work enters, a scope is opened: the API's request id (`X-Request-Id` in, echoed out; API
Gateway's request id, else a new one), a scheduled run's EventBridge event id, a queue message's
`correlation_id`. A `Message` created inside the scope takes its `correlation_id` from it
(tgops.messaging.envelopes), so the consumer that handles it opens a scope with the same id, and so
on down the line. Code that learns a domain id adds it with `bind(order_id=...)`; the logging set-up
(tgops.logs) puts every field of the current scope on every line, so one search for the request id,
an update id, an order id, a task id or a job id finds the whole path.

The fields live in a context variable: each asyncio task and each thread started through
`asyncio.to_thread` sees the scope it was started in, and a `bind` inside a task stays in that task.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType

CORRELATION_ID = "correlation_id"
# The domain ids a queue message may carry at its top level; the consumer engine binds those it finds.
DOMAIN_IDS = ("update_id", "bot_id", "order_id", "task_id", "job_id", "chat_id", "account_id")
# What an id from outside may look like: short, and nothing that could forge a log line or a header.
ACCEPTED_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}")

Field = str | int

_fields: ContextVar[Mapping[str, Field]] = ContextVar("tgops_correlation", default=MappingProxyType({}))


def new_id() -> str:
    return uuid.uuid4().hex


def accepted_id(value: object) -> str | None:
    """`value` if it is usable as a correlation id from outside (a client's X-Request-Id), else None."""
    if isinstance(value, str) and ACCEPTED_ID.fullmatch(value):
        return value
    return None


def correlation_id() -> str | None:
    """The current scope's correlation id (None outside any scope)."""
    value = _fields.get().get(CORRELATION_ID)
    return None if value is None else str(value)


def current() -> dict[str, Field]:
    return dict(_fields.get())


@contextmanager
def scope(**fields: Field | None) -> Iterator[None]:
    """The fields of one unit of work (a request, a message, a run), on top of the enclosing scope's;
    None values are left out. Everything bound inside is dropped on leaving."""
    token = _fields.set(MappingProxyType({**_fields.get(), **_present(fields)}))
    try:
        yield
    finally:
        _fields.reset(token)


def bind(**fields: Field | None) -> None:
    """Add fields to the current scope (until it ends), e.g. `bind(order_id=order.id)`."""
    _fields.set(MappingProxyType({**_fields.get(), **_present(fields)}))


def _present(fields: Mapping[str, Field | None]) -> dict[str, Field]:
    return {key: value for key, value in fields.items() if value is not None}


class CorrelationFilter(logging.Filter):
    """Puts the current scope's fields on a record, as if given in `extra=` (which wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _fields.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True
