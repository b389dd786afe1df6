from __future__ import annotations

import logging

import pytest

from tests.helpers.emf import Emitted, emitted, enable_metrics
from tgops import metrics

AWS_MARKERS = ("AWS_LAMBDA_FUNCTION_NAME", "ECS_CONTAINER_METADATA_URI_V4")


@pytest.fixture
def local(monkeypatch):
    """A developer's machine: no AWS marker, no metrics switch."""
    for name in (*AWS_MARKERS, "POWERTOOLS_METRICS_DISABLED", "POWERTOOLS_DEV"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"AWS_LAMBDA_FUNCTION_NAME": "tgops-poll-orders"}, True),
        ({"ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/abc"}, True),
        ({"AWS_LAMBDA_FUNCTION_NAME": "f", "POWERTOOLS_METRICS_DISABLED": "true"}, False),
        ({"POWERTOOLS_METRICS_DISABLED": "false"}, True),
    ],
)
def test_metrics_are_on_on_aws_and_off_locally_unless_switched(local, capsys, env, expected):
    for name, value in env.items():
        local.setenv(name, value)

    metrics.count("PollRuns")

    assert metrics.enabled() is expected
    assert bool(emitted(capsys.readouterr().out)) is expected


def test_counts_are_one_emf_document_in_the_tgops_namespace_with_the_service_dimension(monkeypatch, capsys):
    enable_metrics(monkeypatch, service="tgops-poll")

    metrics.publish({"OrdersStored": 3, "OrdersDispatched": 0}, status="validating")

    out = capsys.readouterr().out
    assert len(out.splitlines()) == 1
    dimensions = {"service": "tgops-poll", "status": "validating"}
    assert emitted(out) == [
        Emitted("tgops", "OrdersStored", 3, dimensions),
        Emitted("tgops", "OrdersDispatched", 0, dimensions),
    ]


def test_a_metric_that_cannot_be_emitted_is_logged_and_never_raises(monkeypatch, capsys, caplog):
    enable_metrics(monkeypatch)
    caplog.set_level(logging.ERROR, logger="tgops.metrics")

    metrics.count("OrdersStored", "many")  # type: ignore[arg-type]

    assert emitted(capsys.readouterr().out) == []
    assert [record.getMessage() for record in caplog.records] == ["metrics ['OrdersStored'] not emitted"]
