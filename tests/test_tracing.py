"""tgops.tracing: X-Ray spans through Powertools Tracer on Lambda, annotated with the correlation fields;
off (and not even imported) anywhere else or when switched off.

The traced runs are fresh interpreters, as a Lambda container is: the X-Ray SDK and Powertools' Tracer
keep process-wide state. Their segments go over UDP to a socket standing in for the X-Ray daemon.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import load_event
from tgops import tracing

SHARED = Path(__file__).resolve().parents[1] / "shared"
TRACE_HEADER = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
CONSUME_ONE_MESSAGE = """
import json, sys
from tgops.messaging.lambda_batch import process_sqs_messages
from tgops.messaging.topology import GROUP_MESSAGE

async def handle(message):
    pass

body = json.dumps({"kind": "broadcast", "correlation_id": "req-trace-1", "order_id": 5})
record = {"messageId": "sqs-1", "receiptHandle": "h", "body": body,
          "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {}, "eventSource": "aws:sqs"}
print(json.dumps(process_sqs_messages({"Records": [record]}, None, GROUP_MESSAGE, handle)))
print(json.dumps(sorted({name.split(".")[0] for name in sys.modules if name.startswith("aws_xray_sdk")})))
"""


def run_python(code: str, env: dict[str, str], *args: str) -> list[str]:
    base = {
        name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "TGOPS_", "ECS_"))
    }
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        env=base | {"PYTHONPATH": str(SHARED), "AWS_DEFAULT_REGION": "us-east-1", "TGOPS_ENV": "test"} | env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()


def received_entities(daemon: socket.socket) -> list[dict]:
    """What the X-Ray SDK sent: each datagram is a header line and one segment or subsegment document."""
    entities = []
    daemon.settimeout(0.5)
    while True:
        try:
            datagram = daemon.recv(65536).decode()
        except TimeoutError:
            return entities
        header, _, document = datagram.partition("\n")
        assert json.loads(header) == {"format": "json", "version": 1}
        entities.append(json.loads(document))


def test_on_lambda_a_consumed_message_is_a_subsegment_annotated_with_its_correlation_fields():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        lambda_env = {
            "AWS_LAMBDA_FUNCTION_NAME": "tgops-broadcast-consumer",
            "LAMBDA_TASK_ROOT": str(SHARED),
            "_X_AMZN_TRACE_ID": TRACE_HEADER,
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
            "POWERTOOLS_SERVICE_NAME": "broadcast_consumer",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        response, imported = run_python(CONSUME_ONE_MESSAGE, lambda_env)
        entities = received_entities(daemon)

    assert json.loads(response) == {"batchItemFailures": []}
    assert json.loads(imported) == ["aws_xray_sdk"]
    (message,) = [entity for entity in entities if entity["name"] == "queue group_message_queue"]
    assert message["trace_id"] == "1-5759e988-bd862e3fe1be46a994272793"
    assert message["annotations"] == {
        "correlation_id": "req-trace-1",
        "order_id": 5,
        "kind": "broadcast",
        "queue": "group_message_queue",
        "sqs_message_id": "sqs-1",
    }


API_REQUEST = """
import json, sys
from types import SimpleNamespace
from mangum import Mangum
from tgops.api.app import create_app
from tgops.config import Settings
from tgops.messaging.sqs import InMemoryQueues
from tgops.runtime import Runtime

event = json.loads(sys.argv[1])
app = create_app(Runtime(Settings(_env_file=None), queue_sender=InMemoryQueues()))
response = Mangum(app, lifespan="off")(event, SimpleNamespace(aws_request_id="lambda-request-1"))
print(response["statusCode"])
"""


def test_on_lambda_an_api_request_is_a_subsegment_annotated_with_its_request_id():
    event = load_event("http_api_health") | {"rawPath": "/no-such-page"}
    event["requestContext"]["http"]["path"] = "/no-such-page"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        lambda_env = {
            "AWS_LAMBDA_FUNCTION_NAME": "tgops-http-api",
            "LAMBDA_TASK_ROOT": str(SHARED),
            "_X_AMZN_TRACE_ID": TRACE_HEADER,
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "TGOPS_ENV": "development",
        }
        (status,) = run_python(API_REQUEST, lambda_env, json.dumps(event))
        entities = received_entities(daemon)

    assert status == "404"
    (request,) = [entity for entity in entities if entity["name"] == "GET /no-such-page"]
    assert request["annotations"] == {
        "correlation_id": "CXb0zjQ8oAMEbKw=",
        "function_request_id": "lambda-request-1",
        "http_method": "GET",
    }


CONSUME_CONCURRENTLY = """
import asyncio, json
from tgops.messaging.consumer import QueueConsumer
from tgops.messaging.sqs import Received
from tgops.messaging.topology import SETUP_FAST

async def handle(message):
    await asyncio.sleep(0.05)  # both jobs are in flight at once, as in a worker

def received(number):
    body = json.dumps({"kind": "run_setup_task", "correlation_id": f"run-{number}", "task_id": number})
    return Received(message_id=f"sqs-{number}", receipt_handle="h", body=body, receive_count=1)

async def main():
    from tgops import tracing
    tracing.tracer().provider.configure(sampling=False)  # send every segment, not one a second
    consumer = QueueConsumer(SETUP_FAST, handle)
    outcomes = await asyncio.gather(*(consumer.consume(received(number)) for number in (1, 2)))
    print(json.dumps([outcome.verdict.value for outcome in outcomes]))

asyncio.run(main())
"""


def test_in_a_fargate_worker_each_concurrent_job_is_a_segment_of_its_own():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as daemon:
        daemon.bind(("127.0.0.1", 0))
        ecs_env = {
            "ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/task",
            "AWS_XRAY_DAEMON_ADDRESS": f"127.0.0.1:{daemon.getsockname()[1]}",
            "POWERTOOLS_SERVICE_NAME": "setup",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        (verdicts,) = run_python(CONSUME_CONCURRENTLY, ecs_env)
        entities = received_entities(daemon)

    assert json.loads(verdicts) == ["done", "done"]
    segments = sorted(
        (entity for entity in entities if entity.get("type") != "subsegment"), key=lambda e: e["name"]
    )
    assert [segment["name"] for segment in segments] == ["queue tg-setup-fast"] * 2
    assert sorted((s["annotations"]["correlation_id"], s["annotations"]["task_id"]) for s in segments) == [
        ("run-1", 1),
        ("run-2", 2),
    ]
    assert len({segment["trace_id"] for segment in segments}) == 2


@pytest.mark.parametrize(
    "env",
    [
        {},  # tgops dev, the CLI, the tests
        {
            "AWS_LAMBDA_FUNCTION_NAME": "f",
            "LAMBDA_TASK_ROOT": "/var/task",
            "POWERTOOLS_TRACE_DISABLED": "true",
        },
        {"ECS_CONTAINER_METADATA_URI_V4": "http://169.254.170.2/v4/x"},  # a worker without an X-Ray daemon
    ],
    ids=["local", "switched-off", "fargate-without-daemon"],
)
def test_while_off_a_message_is_consumed_without_importing_the_xray_sdk(env):
    response, imported = run_python(CONSUME_ONE_MESSAGE, env | {"POWERTOOLS_METRICS_DISABLED": "true"})

    assert json.loads(response) == {"batchItemFailures": []}
    assert json.loads(imported) == []


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"AWS_LAMBDA_FUNCTION_NAME": "f"}, True),
        ({"AWS_LAMBDA_FUNCTION_NAME": "f", "AWS_SAM_LOCAL": "true"}, False),
        ({"AWS_LAMBDA_FUNCTION_NAME": "f", "POWERTOOLS_TRACE_DISABLED": "true"}, False),
        ({"ECS_CONTAINER_METADATA_URI_V4": "http://x"}, False),
        ({"ECS_CONTAINER_METADATA_URI_V4": "http://x", "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:2000"}, True),
    ],
)
def test_tracing_is_on_in_lambda_and_beside_an_xray_daemon_only(monkeypatch, env, expected):
    for name in (*tracing_envs(), *env):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    assert tracing.enabled() is expected


def tracing_envs() -> tuple[str, ...]:
    return ("AWS_LAMBDA_FUNCTION_NAME", "AWS_SAM_LOCAL", "POWERTOOLS_TRACE_DISABLED",
            "ECS_CONTAINER_METADATA_URI_V4", "AWS_XRAY_DAEMON_ADDRESS")  # fmt: skip
