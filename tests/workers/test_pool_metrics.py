from __future__ import annotations

from tests.helpers.emf import enable_metrics, totals
from tgops.telegram.pool import PoolMetrics
from tgops.workers.process import PoolMetricsPublisher


def outcomes(stdout: str) -> dict[str, float]:
    return {dict(dimensions)["outcome"]: value for (_, dimensions), value in totals(stdout).items()}


def test_each_pool_outcome_is_published_once(monkeypatch, capsys):
    enable_metrics(monkeypatch)
    pool_metrics = PoolMetrics()
    publisher = PoolMetricsPublisher(pool_metrics)
    for outcome in ("ok", "ok", "no_available_accounts"):
        pool_metrics.increment(outcome)

    publisher.publish()
    first = capsys.readouterr().out
    pool_metrics.increment("ok")
    publisher.publish()
    second = capsys.readouterr().out
    publisher.publish()
    third = capsys.readouterr().out

    assert {name for name, _ in totals(first)} == {"MtprotoPoolOutcomes"}
    assert outcomes(first) == {"ok": 2, "no_available_accounts": 1}
    assert outcomes(second) == {"ok": 1}
    assert third == ""
    # the pool's own counts stay whole
    assert pool_metrics.snapshot() == {"ok": 3, "no_available_accounts": 1}
