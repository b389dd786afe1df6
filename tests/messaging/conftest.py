from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from moto import mock_aws

from tgops.config import Settings
from tgops.messaging.sqs import SqsQueues

TEST_PREFIX = "test-"


def sqs_settings(**overrides) -> Settings:
    return Settings(_env_file=None, queue_prefix=TEST_PREFIX, aws_region="us-east-1", **overrides)


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def queues(aws: None) -> SqsQueues:
    """Every queue of the topology, created in moto."""
    sqs = SqsQueues(sqs_settings())
    sqs.ensure_queues()
    return sqs


async def eventually(condition: Callable[[], bool], what: str, timeout_sec: float = 15) -> None:
    """Wait for a condition that must come true; the limit only stops a broken test from hanging."""
    deadline = time.monotonic() + timeout_sec
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.05)
