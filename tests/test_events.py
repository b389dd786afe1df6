"""The saved SQS sample is what ingress would send to dm_queue, so consumer tests and `sam local invoke` agree."""

from __future__ import annotations

from tests.conftest import load_event
from tgops.ingress.messages import TelegramUpdateReceived
from tgops.ingress.routing import route_update
from tgops.messaging import topology
from tgops.messaging.envelopes import decode


def test_sqs_sample_is_a_telegram_update_routed_to_dm_queue():
    (record,) = load_event("sqs_dm_queue")["Records"]
    message = decode(record["body"], TelegramUpdateReceived)
    route = route_update(message.update)
    assert route.queue == topology.DM.name
    assert record["eventSourceARN"].endswith(":" + topology.DM.physical_name("tgops-dev-"))
    assert record["attributes"]["MessageGroupId"] == route.group_id(message.bot_id)
    assert record["attributes"]["MessageDeduplicationId"] == f"{message.bot_id}:{message.update_id}"
