"""The queue topology, declared once: every queue, its DLQ, its consumer and its schedule.

template.yaml must declare exactly this (tests/test_template.py checks it), and `tgops dev`
creates and consumes exactly this.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Literal

MAX_RECEIVE_COUNT = 3
DLQ_ALARM_THRESHOLD = 10
VISIBILITY_FACTOR = 6


class Priority(str, Enum):
    HIGH = "high"  # user commands, join requests: never wait behind bulk work
    NORMAL = "normal"
    BULK = "bulk"


@dataclass(frozen=True)
class Consumer:
    name: str  # Lambda function folder under functions/, or Fargate worker module under tgops.workers
    runtime: Literal["lambda", "fargate"]
    timeout_sec: int  # Lambda timeout, or the worker's per-message job timeout
    batch_size: int
    concurrency: int  # Lambda maximum concurrency, or Fargate in-process parallel jobs


@dataclass(frozen=True)
class QueueSpec:
    name: str
    consumer: Consumer
    priority: Priority
    # Functions and workers that send to it, besides the API (whose DLQ replay sends to every queue).
    # template.yaml must let each of them send (tests/test_template.py).
    producers: tuple[str, ...]
    fifo: bool = False  # FIFO queues keep one chat's updates in the order Telegram sent them
    retention_sec: int = 4 * 24 * 3600

    @property
    def dlq_name(self) -> str:
        return f"{self.name}-dlq"

    @property
    def visibility_timeout_sec(self) -> int:
        return self.consumer.timeout_sec * VISIBILITY_FACTOR

    def physical_name(self, prefix: str) -> str:
        return f"{prefix}{self.name}{'.fifo' if self.fifo else ''}"

    def physical_dlq_name(self, prefix: str) -> str:
        return f"{prefix}{self.dlq_name}{'.fifo' if self.fifo else ''}"


DM = QueueSpec(
    "dm_queue",
    Consumer("dm_consumer", "lambda", timeout_sec=30, batch_size=10, concurrency=20),
    Priority.HIGH,
    producers=(),  # the webhooks
    fifo=True,
)
TGMS = QueueSpec(
    "tgms_queue",
    Consumer("group_consumer", "lambda", timeout_sec=60, batch_size=10, concurrency=10),
    Priority.HIGH,
    producers=("group_tick", "group_consumer", "inspect"),  # maintenance, decisions, backfilled requests
    fifo=True,
)
GROUP_MESSAGE = QueueSpec(
    "group_message_queue",
    Consumer("broadcast_consumer", "lambda", timeout_sec=120, batch_size=5, concurrency=2),
    Priority.BULK,
    producers=("broadcast_consumer",),  # continuations, paused jobs
)
INSPECT = QueueSpec(
    "tg-inspect",
    Consumer("inspect", "fargate", timeout_sec=180, batch_size=10, concurrency=32),
    Priority.NORMAL,
    # validations, rechecks, continuations and paused jobs, join-request backfills
    producers=("poll_orders", "generate_tasks", "inspect", "group_consumer"),
)
SETUP_FAST = QueueSpec(
    "tg-setup-fast",
    Consumer("setup", "fargate", timeout_sec=120, batch_size=10, concurrency=16),
    Priority.NORMAL,
    producers=("dispatch_setup",),
)
SETUP_MEDIA = QueueSpec(
    "tg-setup-media",
    Consumer("setup", "fargate", timeout_sec=300, batch_size=2, concurrency=2),
    Priority.BULK,
    producers=("dispatch_setup",),
)

QUEUES: tuple[QueueSpec, ...] = (DM, TGMS, GROUP_MESSAGE, INSPECT, SETUP_FAST, SETUP_MEDIA)
QUEUES_BY_NAME = {queue.name: queue for queue in QUEUES}


@dataclass(frozen=True)
class Schedule:
    name: str  # Lambda function folder under functions/
    rate_minutes: int

    @property
    def expression(self) -> str:
        unit = "minute" if self.rate_minutes == 1 else "minutes"
        return f"rate({self.rate_minutes} {unit})"


SCHEDULES: tuple[Schedule, ...] = (
    Schedule("poll_orders", 1),
    Schedule("generate_tasks", 1),
    Schedule("flush_panel_updates", 1),
    Schedule("dispatch_setup", 5),
    Schedule("group_tick", 5),
)
SCHEDULES_BY_NAME = {schedule.name: schedule for schedule in SCHEDULES}


def queue(name: str) -> QueueSpec:
    try:
        return QUEUES_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown queue {name!r}; known: {', '.join(QUEUES_BY_NAME)}") from None
