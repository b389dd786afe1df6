"""CloudWatch metrics as Embedded Metric Format (EMF) lines on stdout, through Powertools Metrics.

CloudWatch Logs turns those lines into metrics, for Lambda and for Fargate's awslogs driver alike.
Namespace "tgops", with a `service` dimension from POWERTOOLS_SERVICE_NAME.

On or off: POWERTOOLS_METRICS_DISABLED=true turns metrics off and =false turns them on anywhere.
Left unset, they are on only on AWS (a Lambda or an ECS task), so `tgops dev` and tests stay quiet.
Powertools is imported on the first metric emitted, never when metrics are off.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

log = logging.getLogger(__name__)

NAMESPACE = "tgops"
DEFAULT_SERVICE = "tgops"
SWITCH_ENV = "POWERTOOLS_METRICS_DISABLED"
ON_AWS_ENVS = ("AWS_LAMBDA_FUNCTION_NAME", "ECS_CONTAINER_METADATA_URI_V4")


def enabled() -> bool:
    switch = os.environ.get(SWITCH_ENV, "").strip().lower()
    if switch:
        return switch in ("0", "false", "no", "off")
    return any(os.environ.get(name) for name in ON_AWS_ENVS)


def count(name: str, value: float = 1, **dimensions: object) -> None:
    """One count metric, e.g. `count("OrdersSkipped", 3, reason="no_remains")`."""
    publish({name: value}, **dimensions)


def publish(counts: Mapping[str, float], **dimensions: object) -> None:
    """Several count metrics sharing the same dimensions, as one EMF document."""
    if not counts or not enabled():
        return
    try:
        from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

        metrics = EphemeralMetrics(
            namespace=NAMESPACE, service=os.environ.get("POWERTOOLS_SERVICE_NAME") or DEFAULT_SERVICE
        )
        for dimension, dimension_value in dimensions.items():
            metrics.add_dimension(name=dimension, value=str(dimension_value))
        for name, value in counts.items():
            metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
        metrics.flush_metrics()
    except Exception:  # a metric that cannot be emitted must never fail the work it counts
        log.exception("metrics %s not emitted", sorted(counts), extra={"dimensions": dimensions})
