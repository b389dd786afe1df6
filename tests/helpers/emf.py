"""Reading the CloudWatch EMF documents tgops.metrics prints to stdout."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Emitted:
    namespace: str
    name: str
    value: float
    dimensions: dict[str, str]


def enable_metrics(monkeypatch, service: str = "tgops-test") -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", service)
    monkeypatch.delenv("POWERTOOLS_DEV", raising=False)


def emitted(stdout: str) -> list[Emitted]:
    """Every metric value in the EMF lines of `stdout`, in order; other lines are ignored."""
    found = []
    for line in stdout.splitlines():
        if not line.startswith('{"_aws"'):
            continue
        document = json.loads(line)
        for directive in document["_aws"]["CloudWatchMetrics"]:
            (dimension_names,) = directive["Dimensions"]
            dimensions = {name: document[name] for name in dimension_names}
            for metric in directive["Metrics"]:
                assert metric["Unit"] == "Count"
                for value in document[metric["Name"]]:
                    found.append(Emitted(directive["Namespace"], metric["Name"], value, dimensions))
    return found


def totals(stdout: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """{(metric name, its dimensions other than service): summed value}."""
    summed: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for metric in emitted(stdout):
        key = (metric.name, frozenset((k, v) for k, v in metric.dimensions.items() if k != "service"))
        summed[key] = summed.get(key, 0) + metric.value
    return summed
