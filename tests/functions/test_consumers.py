"""Every Lambda consumer of the topology is the engine's two-line adapter for its own queue, and is
there as soon as its queue has a handler (tests/messaging/test_handlers.py names those still missing)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.messaging.test_handlers import STILL_MISSING_QUEUE_HANDLERS
from tgops.messaging.topology import QUEUES

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
LAMBDA_QUEUES = [spec for spec in QUEUES if spec.consumer.runtime == "lambda"]


def adapter_queue(app: Path) -> str | None:
    """The queue of `handler = lambda_handler("<queue>")` imported from tgops.messaging.consumer, or None."""
    tree = ast.parse(app.read_text())
    imported = any(
        isinstance(node, ast.ImportFrom)
        and node.module == "tgops.messaging.consumer"
        and any(alias.name == "lambda_handler" for alias in node.names)
        for node in tree.body
    )
    for node in tree.body:
        if (
            imported
            and isinstance(node, ast.Assign)
            and [target.id for target in node.targets if isinstance(target, ast.Name)] == ["handler"]
            and isinstance(node.value, ast.Call)
            and getattr(node.value.func, "id", None) == "lambda_handler"
            and [type(arg) for arg in node.value.args] == [ast.Constant]
        ):
            return node.value.args[0].value
    return None


@pytest.mark.parametrize("spec", LAMBDA_QUEUES, ids=lambda spec: spec.consumer.name)
def test_a_lambda_consumer_is_the_engine_adapter_of_its_queue(spec):
    app = FUNCTIONS / spec.consumer.name / "app.py"
    if not app.exists():
        assert spec.name in STILL_MISSING_QUEUE_HANDLERS, f"{spec.name} has a handler but no {app}"
        return

    assert adapter_queue(app) == spec.name


def test_the_adapter_check_reads_the_two_line_form(tmp_path):
    good = tmp_path / "good.py"
    good.write_text(
        'from tgops.messaging.consumer import lambda_handler\n\nhandler = lambda_handler("dm_queue")\n'
    )
    wrong = tmp_path / "wrong.py"
    wrong.write_text(
        "from tgops.messaging.lambda_batch import process_sqs_messages\n\nhandler = process_sqs_messages\n"
    )

    assert (adapter_queue(good), adapter_queue(wrong)) == ("dm_queue", None)
