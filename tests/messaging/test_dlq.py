"""The DLQ administration works through the QueueBackend protocol alone (any backend, not only SQS)."""

from __future__ import annotations

from tgops.messaging.backend import QueueBackend
from tgops.messaging.dlq import DeadLetters
from tgops.messaging.sqs import SqsQueues
from tgops.messaging.topology import GROUP_MESSAGE

PROTOCOL_METHODS = [
    name
    for protocol in QueueBackend.__mro__
    if protocol is not object
    for name in vars(protocol)
    if not name.startswith("_")
]


class ProtocolOnly:
    """Exposes the protocol's methods of a backend and nothing else (no boto3 client, no URLs)."""

    def __init__(self, backend: SqsQueues) -> None:
        for name in PROTOCOL_METHODS:
            setattr(self, name, getattr(backend, name))


async def test_view_and_replay_need_nothing_but_the_protocol(queues, db):
    backend = ProtocolOnly(queues)
    redriven = queues.client.send_message(QueueUrl=queues.url(GROUP_MESSAGE.dlq_name), MessageBody="dead")
    dead_letters = DeadLetters(backend, db, GROUP_MESSAGE)

    view = await dead_letters.view(limit=10)
    result = await dead_letters.replay(None)

    assert "depth" in PROTOCOL_METHODS and not hasattr(backend, "client")
    assert (view.approximate_depth, [m.message_id for m in view.messages]) == (1, [redriven["MessageId"]])
    assert list(result.replayed) == [redriven["MessageId"]]
    [back] = await queues.receive(GROUP_MESSAGE.name, wait_time_sec=0)
    assert back.body == "dead"
    assert queues.depth(GROUP_MESSAGE.dlq_name)["visible"] == 0
