"""The pool's counters."""

from __future__ import annotations

from collections import Counter


class PoolMetrics:
    """In-process counters per outcome. The pool lives in a long-running Fargate task, where Powertools
    Metrics' flush-per-invocation does not fit; the worker reads `snapshot()` (and may publish it)."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()

    def increment(self, outcome: str) -> None:
        self._counts[outcome] += 1

    def snapshot(self) -> dict[str, int]:
        return dict(self._counts)
