"""Sending to and receiving from the queues of the topology, by their logical names.

`SqsQueues` talks to SQS (or the local moto server at `sqs_endpoint_url`) through boto3; its async
methods run the blocking calls in a thread. `InMemoryQueues` records sends for unit tests and
benchmarks. Both refuse a send that the queue would refuse (FIFO without group or dedup id, ...).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from ulid import ULID

from tgops.config import Settings, get_settings
from tgops.messaging.errors import QueueUnavailable
from tgops.messaging.topology import MAX_RECEIVE_COUNT, QUEUES, QueueSpec

MAX_DELAY_SEC = 900
MAX_RECEIVE_BATCH = 10
MAX_WAIT_TIME_SEC = 20
DLQ_RETENTION_SEC = 14 * 24 * 3600  # the longest SQS keeps a message: time for a human to look
DEPTH_ATTRIBUTES = {
    "visible": "ApproximateNumberOfMessages",
    "in_flight": "ApproximateNumberOfMessagesNotVisible",
    "delayed": "ApproximateNumberOfMessagesDelayed",
}


@dataclass(frozen=True)
class Received:
    """One received message, held until it is deleted or its visibility runs out."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def group_id(self) -> str | None:
        return self.attributes.get("MessageGroupId")

    @classmethod
    def from_sqs(cls, message: dict[str, Any]) -> Received:
        attributes = message.get("Attributes", {})
        return cls(
            message_id=message["MessageId"],
            receipt_handle=message["ReceiptHandle"],
            body=message["Body"],
            receive_count=int(attributes.get("ApproximateReceiveCount", 1)),
            attributes=attributes,
        )


def check_send(spec: QueueSpec, group_id: str | None, dedup_id: str | None, delay_sec: int) -> None:
    """Refuse, before any network call, what SQS would refuse for this queue."""
    if not 0 <= delay_sec <= MAX_DELAY_SEC:
        raise ValueError(f"delay_sec must be between 0 and {MAX_DELAY_SEC}, got {delay_sec}")
    if spec.fifo:
        if not group_id or not dedup_id:
            raise ValueError(f"{spec.name} is a FIFO queue: group_id and dedup_id are required")
        if delay_sec:
            raise ValueError(f"{spec.name} is a FIFO queue: per-message delay_sec is not supported")
    elif group_id or dedup_id:
        raise ValueError(f"{spec.name} is a standard queue: group_id and dedup_id apply only to FIFO queues")


def find_spec(specs: Iterable[QueueSpec], queue: str) -> QueueSpec:
    for spec in specs:
        if spec.name == queue:
            return spec
    raise KeyError(f"unknown queue {queue!r}")


@contextmanager
def translated_errors(action: str) -> Iterator[None]:
    try:
        yield
    except ClientError as error:
        details = error.response.get("Error", {})
        code, message = details.get("Code", "error"), details.get("Message", "")
        raise QueueUnavailable(f"{action}: {code}: {message}") from error
    except BotoCoreError as error:
        raise QueueUnavailable(f"{action}: {error}") from error


class SqsQueues:
    """The topology's queues on SQS. Logical names (`dm_queue`, `dm_queue-dlq`) in, boto3 out."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        specs: Iterable[QueueSpec] = QUEUES,
        connect_timeout_sec: float = 5,
        read_timeout_sec: float = MAX_WAIT_TIME_SEC + 10,  # a long poll holds the connection up to 20 s
        max_retries: int = 3,  # botocore's `max_attempts`: retries after the first attempt
    ) -> None:
        """The timeouts suit receivers; a sender inside a request's deadline (the webhook) passes tighter ones."""
        settings = settings or get_settings()
        self.specs = tuple(specs)
        self.client = boto3.client(
            "sqs",
            region_name=settings.aws_region,
            endpoint_url=settings.sqs_endpoint_url,
            config=Config(
                connect_timeout=connect_timeout_sec,
                read_timeout=read_timeout_sec,
                retries={"mode": "standard", "max_attempts": max_retries},
                max_pool_connections=32,
            ),
        )
        self._physical_names = {}
        for spec in self.specs:
            self._physical_names[spec.name] = spec.physical_name(settings.queue_prefix)
            self._physical_names[spec.dlq_name] = spec.physical_dlq_name(settings.queue_prefix)
        self._urls: dict[str, str] = {}

    def physical_name(self, queue: str) -> str:
        try:
            return self._physical_names[queue]
        except KeyError:
            raise KeyError(f"unknown queue {queue!r}; known: {', '.join(self._physical_names)}") from None

    def url(self, queue: str) -> str:
        if queue not in self._urls:
            name = self.physical_name(queue)
            with translated_errors(f"resolve queue {name}"):
                self._urls[queue] = self.client.get_queue_url(QueueName=name)["QueueUrl"]
        return self._urls[queue]

    async def send(
        self,
        queue: str,
        body: str,
        *,
        group_id: str | None = None,
        dedup_id: str | None = None,
        delay_sec: int = 0,
    ) -> str:
        check_send(find_spec(self.specs, queue), group_id, dedup_id, delay_sec)
        request: dict[str, Any] = {"MessageBody": body}
        if group_id:
            request |= {"MessageGroupId": group_id, "MessageDeduplicationId": dedup_id}
        if delay_sec:
            request["DelaySeconds"] = delay_sec
        response = await asyncio.to_thread(self._call, "send to", queue, "send_message", **request)
        return response["MessageId"]

    async def receive(
        self,
        queue: str,
        *,
        max_messages: int = MAX_RECEIVE_BATCH,
        wait_time_sec: int = MAX_WAIT_TIME_SEC,
        visibility_timeout_sec: int | None = None,
    ) -> list[Received]:
        request: dict[str, Any] = {
            "MaxNumberOfMessages": max(1, min(max_messages, MAX_RECEIVE_BATCH)),
            "WaitTimeSeconds": max(0, min(wait_time_sec, MAX_WAIT_TIME_SEC)),
            "MessageSystemAttributeNames": ["All"],
            "MessageAttributeNames": ["All"],
        }
        if visibility_timeout_sec is not None:
            request["VisibilityTimeout"] = visibility_timeout_sec
        response = await asyncio.to_thread(self._call, "receive from", queue, "receive_message", **request)
        return [Received.from_sqs(message) for message in response.get("Messages", [])]

    async def delete(self, queue: str, receipt_handle: str) -> None:
        await asyncio.to_thread(
            self._call, "delete from", queue, "delete_message", ReceiptHandle=receipt_handle
        )

    async def change_visibility(self, queue: str, receipt_handle: str, timeout_sec: int) -> None:
        await asyncio.to_thread(self.set_visibility, queue, receipt_handle, timeout_sec)

    def set_visibility(self, queue: str, receipt_handle: str, timeout_sec: int) -> None:
        """Blocking ChangeMessageVisibility, for the Lambda side that has no event loop."""
        self._call(
            "change visibility in",
            queue,
            "change_message_visibility",
            ReceiptHandle=receipt_handle,
            VisibilityTimeout=timeout_sec,
        )

    def release(self, queue: str, receipt_handles: Iterable[str]) -> list[str]:
        """Make held messages visible again now; return the receipt handles SQS refused to release."""
        handles = list(receipt_handles)
        refused: list[str] = []
        for start in range(0, len(handles), MAX_RECEIVE_BATCH):
            chunk = handles[start : start + MAX_RECEIVE_BATCH]
            entries = [
                {"Id": str(index), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for index, handle in enumerate(chunk)
            ]
            response = self._call(
                "release messages in", queue, "change_message_visibility_batch", Entries=entries
            )
            refused += [chunk[int(failure["Id"])] for failure in response.get("Failed", [])]
        return refused

    def _call(self, action: str, queue: str, operation: str, **request: Any) -> dict[str, Any]:
        url = self.url(queue)
        with translated_errors(f"{action} {self.physical_name(queue)}"):
            return getattr(self.client, operation)(QueueUrl=url, **request)

    def ensure_queues(self) -> dict[str, str]:
        """Create or update every queue and its DLQ to match the topology; return logical name -> URL."""
        for spec in self.specs:
            dlq_url = self._ensure(
                spec.dlq_name, spec.fifo, {"MessageRetentionPeriod": str(DLQ_RETENTION_SEC)}
            )
            redrive = {"deadLetterTargetArn": self._arn(dlq_url), "maxReceiveCount": MAX_RECEIVE_COUNT}
            queue_url = self._ensure(
                spec.name,
                spec.fifo,
                {
                    "VisibilityTimeout": str(spec.visibility_timeout_sec),
                    "MessageRetentionPeriod": str(spec.retention_sec),
                    "RedrivePolicy": json.dumps(redrive),
                },
            )
            allow = {"redrivePermission": "byQueue", "sourceQueueArns": [self._arn(queue_url)]}
            with translated_errors(f"configure {self.physical_name(spec.dlq_name)}"):
                self.client.set_queue_attributes(
                    QueueUrl=dlq_url, Attributes={"RedriveAllowPolicy": json.dumps(allow)}
                )
        return dict(self._urls)

    def _ensure(self, queue: str, fifo: bool, attributes: dict[str, Any]) -> str:
        # Only the attributes fixed at creation go to CreateQueue, so a second run with changed
        # settings updates the queue instead of failing with QueueNameExists.
        name = self.physical_name(queue)
        creation: dict[str, Any] = {"FifoQueue": "true", "ContentBasedDeduplication": "false"} if fifo else {}
        with translated_errors(f"create {name}"):
            url = self.client.create_queue(QueueName=name, Attributes=creation)["QueueUrl"]  # type: ignore[arg-type]
            self.client.set_queue_attributes(QueueUrl=url, Attributes=attributes)  # type: ignore[arg-type]
        self._urls[queue] = url
        return url

    def _arn(self, url: str) -> str:
        with translated_errors(f"read the ARN of {url}"):
            response = self.client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return response["Attributes"]["QueueArn"]

    def depth(self, queue: str) -> dict[str, int]:
        """Visible, in-flight and delayed counts of one queue or DLQ (logical name)."""
        response = self._call(
            "read depth of", queue, "get_queue_attributes", AttributeNames=list(DEPTH_ATTRIBUTES.values())
        )
        attributes = response["Attributes"]
        return {key: int(attributes.get(name, 0)) for key, name in DEPTH_ATTRIBUTES.items()}

    def approximate_depths(self) -> dict[str, dict[str, int]]:
        """Visible, in-flight and delayed counts of every queue and DLQ, by logical name."""
        return {queue: self.depth(queue) for spec in self.specs for queue in (spec.name, spec.dlq_name)}


@dataclass(frozen=True)
class SentMessage:
    queue: str
    body: str
    message_id: str
    group_id: str | None = None
    dedup_id: str | None = None
    delay_sec: int = 0


class InMemoryQueues:
    """Records sends instead of making them. FIFO dedup ids are remembered for the object's life."""

    def __init__(self, specs: Iterable[QueueSpec] = QUEUES) -> None:
        self.specs = tuple(specs)
        self.sent: list[SentMessage] = []
        self._dedup: dict[tuple[str, str], str] = {}

    async def send(
        self,
        queue: str,
        body: str,
        *,
        group_id: str | None = None,
        dedup_id: str | None = None,
        delay_sec: int = 0,
    ) -> str:
        check_send(find_spec(self.specs, queue), group_id, dedup_id, delay_sec)
        if dedup_id and (queue, dedup_id) in self._dedup:
            return self._dedup[(queue, dedup_id)]
        message = SentMessage(queue, body, str(ULID()), group_id, dedup_id, delay_sec)
        self.sent.append(message)
        if dedup_id:
            self._dedup[(queue, dedup_id)] = message.message_id
        return message.message_id

    def bodies(self, queue: str) -> list[str]:
        return [message.body for message in self.sent if message.queue == queue]
