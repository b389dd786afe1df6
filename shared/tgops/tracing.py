"""X-Ray traces through Powertools Tracer, costing nothing while off.

`span(name, **annotations)` traces one unit of work: a queue message in the consumer engine, a
scheduled run, an API request. The fields of the current correlation scope (tgops.correlation) become
annotations, so X-Ray's search by `correlation_id`, `order_id`, ... finds the same path as the logs.

On or off:
- POWERTOOLS_TRACE_DISABLED=true: off anywhere (set it locally and in tests).
- In a Lambda function: on; its `Tracing: Active` gives the segment, each span is a subsegment, and the
  AWS SDK's calls (botocore) are traced inside it.
- In an ECS task (the Fargate workers): on only with AWS_XRAY_DAEMON_ADDRESS, the X-Ray daemon sidecar
  to send to; each job is a segment of its own.
- Anywhere else (`tgops dev`, the CLI): off.
While off, neither Powertools' tracer nor the X-Ray SDK is imported.

httpx is not patched, on purpose: a Bot API request's URL holds the bot's token, and a trace records URLs.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from tgops import correlation

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

SWITCH_ENV = "POWERTOOLS_TRACE_DISABLED"
DAEMON_ENV = "AWS_XRAY_DAEMON_ADDRESS"
DEFAULT_SERVICE = "tgops"
PATCHED_MODULES = ("botocore",)
_ANNOTATION_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_]")

_in_segment: ContextVar[bool] = ContextVar("tgops_tracing_in_segment", default=False)


def enabled() -> bool:
    if os.environ.get(SWITCH_ENV, "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    if _on_lambda():
        return True
    return bool(os.environ.get("ECS_CONTAINER_METADATA_URI_V4") and os.environ.get(DAEMON_ENV))


@contextmanager
def span(name: str, **annotations: str | int | bool | None) -> Iterator[None]:
    """Trace the block as `name`, annotated with the correlation fields and `annotations`."""
    if not enabled():
        yield
        return
    recorder: Any = tracer().provider  # aws_xray_sdk's recorder, wider than Powertools' BaseProvider
    top_level = not _on_lambda() and not _in_segment.get()  # Lambda's segment is the function's own
    entered = recorder.in_segment(name) if top_level else recorder.in_subsegment(name)
    marker = _in_segment.set(True)
    try:
        with entered as entity:
            try:
                yield
            finally:  # at the end, so the ids bound inside the block (a webhook's update_id) are there too
                if entity is not None:
                    _annotate(entity, {**correlation.current(), **annotations})
    finally:
        _in_segment.reset(marker)


def _annotate(entity: Any, annotations: dict[str, Any]) -> None:
    for key, value in annotations.items():
        if value is not None:
            entity.put_annotation(_ANNOTATION_KEY_UNSAFE.sub("_", key), value)


@functools.cache
def tracer() -> Tracer:
    """The process's Powertools Tracer (only built while tracing is on)."""
    from aws_lambda_powertools import Tracer

    service = os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
    built = Tracer(service=service, disabled=False, auto_patch=False)
    if _on_lambda():
        built.patch(list(PATCHED_MODULES))
    else:
        from aws_xray_sdk.core.async_context import AsyncContext

        # Segments per asyncio task (a worker runs several jobs at once), not per thread.
        recorder: Any = built.provider
        recorder.configure(
            context=AsyncContext(loop=asyncio.get_running_loop()), context_missing="IGNORE_ERROR"
        )
    return built


def _on_lambda() -> bool:
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME")) and not os.environ.get("AWS_SAM_LOCAL")
