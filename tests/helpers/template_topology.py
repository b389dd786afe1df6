"""Reading template.yaml and comparing it with shared/tgops/messaging/topology.py.

`topology_violations(template)` lists every way the template differs from the topology; an empty
list means it declares exactly the topology's queues, DLQs, alarms, consumers and schedules.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from cfnlint.decode import decode

from tgops.messaging import topology
from tgops.messaging.sqs import DLQ_RETENTION_SEC
from tgops.messaging.topology import QueueSpec

QUEUE_PREFIX = "${AWS::StackName}-"  # what TGOPS_QUEUE_PREFIX is set to in Globals
QUEUE_ARN_PREFIX = "arn:${AWS::Partition}:sqs:${AWS::Region}:${AWS::AccountId}:"
DLQ_DEPTH_METRIC = "ApproximateNumberOfMessagesVisible"
SAM_DEFAULT_TIMEOUT_SEC = 3
SAM_DEFAULT_SQS_BATCH_SIZE = 10

Template = dict[str, Any]


def load_template(path: Path) -> Template:
    """The template as plain dicts and lists; short tags become long form (`!Ref X` -> {"Ref": "X"})."""
    template, errors = decode(str(path))
    if errors:
        raise ValueError(f"{path} does not parse: {[str(error) for error in errors]}")
    return json.loads(json.dumps(template))


def resources(template: Template, resource_type: str) -> dict[str, dict[str, Any]]:
    return {
        logical_id: resource.get("Properties") or {}
        for logical_id, resource in (template.get("Resources") or {}).items()
        if resource.get("Type") == resource_type
    }


def literal_text(value: Any) -> str | None:
    """The text of a plain string or of a one-argument !Sub; None for anything computed."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and list(value) == ["Fn::Sub"] and isinstance(value["Fn::Sub"], str):
        return value["Fn::Sub"]
    return None


def referenced_id(value: Any, attribute: str | None = None) -> str | None:
    """The logical id named by `!Ref Id` (attribute None) or by `!GetAtt Id.<attribute>`."""
    if not isinstance(value, dict) or len(value) != 1:
        return None
    if attribute is None:
        return value.get("Ref")
    target = value.get("Fn::GetAtt")
    if isinstance(target, str):
        target = target.split(".", 1)
    if isinstance(target, list) and len(target) == 2 and target[1] == attribute:
        return target[0]
    return None


def queue_logical_ids(template: Template) -> dict[str, str]:
    """Physical queue name (with the unresolved ${AWS::StackName}- prefix) -> logical id."""
    return {
        literal_text(properties.get("QueueName")) or f"<no literal QueueName on {logical_id}>": logical_id
        for logical_id, properties in resources(template, "AWS::SQS::Queue").items()
    }


def expected_queue_names() -> set[str]:
    return {
        name
        for spec in topology.QUEUES
        for name in (spec.physical_name(QUEUE_PREFIX), spec.physical_dlq_name(QUEUE_PREFIX))
    }


def topology_violations(template: Template, present_functions: Iterable[str] = ()) -> list[str]:
    """Every difference between `template` and the topology.

    `present_functions` are folders under functions/ that hold code: each one the topology names as
    a queue consumer or a scheduled function must be declared in the template with that event.
    """
    queue_ids = queue_logical_ids(template)
    violations = _queue_set_violations(queue_ids)
    for spec in topology.QUEUES:
        main_id = queue_ids.get(spec.physical_name(QUEUE_PREFIX))
        dlq_id = queue_ids.get(spec.physical_dlq_name(QUEUE_PREFIX))
        if main_id and dlq_id:
            violations += _queue_violations(template, spec, main_id, dlq_id)
            violations += _alarm_violations(template, spec, dlq_id)
    events = function_events(template)
    violations += _event_violations(template, events, queue_ids)
    violations += _missing_wiring(events, queue_ids, set(present_functions))
    return violations


def _queue_set_violations(queue_ids: dict[str, str]) -> list[str]:
    declared, expected = set(queue_ids), expected_queue_names()
    extra = [f"queue {name} ({queue_ids[name]}) is not in topology" for name in sorted(declared - expected)]
    missing = [f"queue {name} of the topology is missing" for name in sorted(expected - declared)]
    return extra + missing


def _queue_violations(template: Template, spec: QueueSpec, main_id: str, dlq_id: str) -> list[str]:
    queues = resources(template, "AWS::SQS::Queue")
    main, dlq = queues[main_id], queues[dlq_id]
    violations = [
        f"{label}: FifoQueue must be {spec.fifo}"
        for label, properties in ((spec.name, main), (spec.dlq_name, dlq))
        if bool(properties.get("FifoQueue", False)) != spec.fifo
    ]
    redrive = _json_object(main.get("RedrivePolicy"))
    if referenced_id(redrive.get("deadLetterTargetArn"), "Arn") != dlq_id:
        violations.append(f"{spec.name}: RedrivePolicy must target its own DLQ {dlq_id}")
    if redrive.get("maxReceiveCount") != topology.MAX_RECEIVE_COUNT:
        violations.append(f"{spec.name}: maxReceiveCount must be {topology.MAX_RECEIVE_COUNT}")
    if main.get("VisibilityTimeout") != spec.visibility_timeout_sec:
        violations.append(f"{spec.name}: VisibilityTimeout must be {spec.visibility_timeout_sec}")
    if main.get("MessageRetentionPeriod") != spec.retention_sec:
        violations.append(f"{spec.name}: MessageRetentionPeriod must be {spec.retention_sec}")
    if dlq.get("MessageRetentionPeriod") != DLQ_RETENTION_SEC:
        violations.append(f"{spec.dlq_name}: MessageRetentionPeriod must be {DLQ_RETENTION_SEC}")
    if "RedrivePolicy" in dlq:
        violations.append(f"{spec.dlq_name}: a DLQ must not redrive further")
    if not _allows_redrive_from(dlq.get("RedriveAllowPolicy"), spec, main_id):
        violations.append(f"{spec.dlq_name}: RedriveAllowPolicy must be byQueue from {spec.name} alone")
    return violations


def _allows_redrive_from(policy: Any, spec: QueueSpec, main_id: str) -> bool:
    policy = _json_object(policy)
    sources = policy.get("sourceQueueArns")
    if policy.get("redrivePermission") != "byQueue" or not isinstance(sources, list) or len(sources) != 1:
        return False
    source = sources[0]
    return (
        literal_text(source) == QUEUE_ARN_PREFIX + spec.physical_name(QUEUE_PREFIX)
        or referenced_id(source, "Arn") == main_id
    )


def _alarm_violations(template: Template, spec: QueueSpec, dlq_id: str) -> list[str]:
    alarms = {
        alarm_id: properties
        for alarm_id, properties in resources(template, "AWS::CloudWatch::Alarm").items()
        if _alarmed_queue(properties) == dlq_id
    }
    if len(alarms) != 1:
        return [f"{spec.dlq_name}: expected exactly one depth alarm, found {len(alarms)}"]
    alarm_id, alarm = next(iter(alarms.items()))
    topics = resources(template, "AWS::SNS::Topic")
    violations = []
    if (alarm.get("Namespace"), alarm.get("MetricName")) != ("AWS/SQS", DLQ_DEPTH_METRIC):
        violations.append(f"{alarm_id}: must watch AWS/SQS {DLQ_DEPTH_METRIC}")
    if alarm.get("Threshold") != topology.DLQ_ALARM_THRESHOLD:
        violations.append(f"{alarm_id}: Threshold must be {topology.DLQ_ALARM_THRESHOLD}")
    if alarm.get("ComparisonOperator") != "GreaterThanThreshold":
        violations.append(f"{alarm_id}: ComparisonOperator must be GreaterThanThreshold")
    if not any(referenced_id(action) in topics for action in alarm.get("AlarmActions") or []):
        violations.append(f"{alarm_id}: AlarmActions must notify an SNS topic of the stack")
    return violations


def _alarmed_queue(alarm: dict[str, Any]) -> str | None:
    for dimension in alarm.get("Dimensions") or []:
        if dimension.get("Name") == "QueueName":
            return referenced_id(dimension.get("Value"), "QueueName")
    return None


@dataclass(frozen=True)
class FunctionEvent:
    function_id: str
    folder: str  # the function's CodeUri folder name, which topology calls the consumer name
    timeout_sec: int
    event_id: str
    event_type: str
    properties: dict[str, Any]


def function_events(template: Template) -> list[FunctionEvent]:
    function_globals = (template.get("Globals") or {}).get("Function") or {}
    global_timeout = function_globals.get("Timeout", SAM_DEFAULT_TIMEOUT_SEC)
    return [
        FunctionEvent(
            function_id,
            PurePosixPath(str(properties.get("CodeUri", ""))).name,
            properties.get("Timeout", global_timeout),
            event_id,
            event.get("Type", ""),
            event.get("Properties") or {},
        )
        for function_id, properties in resources(template, "AWS::Serverless::Function").items()
        for event_id, event in (properties.get("Events") or {}).items()
    ]


def _event_violations(
    template: Template, events: list[FunctionEvent], queue_ids: dict[str, str]
) -> list[str]:
    specs_by_id = {queue_ids.get(spec.physical_name(QUEUE_PREFIX)): spec for spec in topology.QUEUES}
    queues = resources(template, "AWS::SQS::Queue")
    violations = []
    for event in events:
        if event.event_type == "SQS":
            spec = specs_by_id.get(referenced_id(event.properties.get("Queue"), "Arn"))
            if spec is None:
                where = f"{event.function_id}.{event.event_id}"
                violations.append(f"{where}: must read a topology queue (!GetAtt <Queue>.Arn)")
            else:
                visibility = queues[queue_ids[spec.physical_name(QUEUE_PREFIX)]].get("VisibilityTimeout", 0)
                violations += _consumer_violations(event, spec, visibility)
        elif event.event_type in ("Schedule", "ScheduleV2"):
            violations += _schedule_violations(event)
    return violations


def _consumer_violations(event: FunctionEvent, spec: QueueSpec, visibility_timeout_sec: int) -> list[str]:
    where, consumer = f"{event.function_id}.{event.event_id}", spec.consumer
    if consumer.runtime != "lambda":
        return [f"{where}: {spec.name} is consumed by the Fargate worker {consumer.name}, not by a Lambda"]
    if consumer.name != event.folder:
        return [f"{where}: {spec.name} is consumed by {consumer.name}, not by functions/{event.folder}/"]
    violations = []
    if event.properties.get("BatchSize", SAM_DEFAULT_SQS_BATCH_SIZE) != consumer.batch_size:
        violations.append(f"{where}: BatchSize must be {consumer.batch_size}")
    if "ReportBatchItemFailures" not in (event.properties.get("FunctionResponseTypes") or []):
        violations.append(f"{where}: FunctionResponseTypes must include ReportBatchItemFailures")
    if (event.properties.get("ScalingConfig") or {}).get("MaximumConcurrency") != consumer.concurrency:
        violations.append(f"{where}: ScalingConfig.MaximumConcurrency must be {consumer.concurrency}")
    if event.timeout_sec != consumer.timeout_sec:
        violations.append(f"{event.function_id}: Timeout must be {consumer.timeout_sec} (topology)")
    if visibility_timeout_sec < topology.VISIBILITY_FACTOR * event.timeout_sec:
        violations.append(
            f"{spec.name}: VisibilityTimeout must be at least "
            f"{topology.VISIBILITY_FACTOR}x the Timeout of {event.function_id}"
        )
    return violations


def _schedule_violations(event: FunctionEvent) -> list[str]:
    where = f"{event.function_id}.{event.event_id}"
    schedule = topology.SCHEDULES_BY_NAME.get(event.folder)
    if schedule is None:
        return [f"{where}: functions/{event.folder}/ is scheduled but topology.SCHEDULES does not list it"]
    expression = event.properties.get("Schedule") or event.properties.get("ScheduleExpression")
    if expression != schedule.expression:
        return [f"{where}: schedule must be {schedule.expression}, not {expression}"]
    return []


def _missing_wiring(events: list[FunctionEvent], queue_ids: dict[str, str], present: set[str]) -> list[str]:
    consumed, scheduled = defaultdict(set), set()
    for event in events:
        if event.event_type == "SQS":
            consumed[event.folder].add(referenced_id(event.properties.get("Queue"), "Arn"))
        elif event.event_type in ("Schedule", "ScheduleV2"):
            scheduled.add(event.folder)
    violations = [
        f"functions/{spec.consumer.name}/ exists but no function of that CodeUri consumes {spec.name}"
        for spec in topology.QUEUES
        if spec.consumer.runtime == "lambda"
        and spec.consumer.name in present
        and queue_ids.get(spec.physical_name(QUEUE_PREFIX)) not in consumed[spec.consumer.name]
    ]
    violations += [
        f"functions/{schedule.name}/ exists but no function of that CodeUri has its schedule event"
        for schedule in topology.SCHEDULES
        if schedule.name in present and schedule.name not in scheduled
    ]
    return violations


def _json_object(value: Any) -> dict[str, Any]:
    """CloudFormation accepts a JSON policy as an object or as a JSON string."""
    if isinstance(value, str):
        value = json.loads(value)
    return value if isinstance(value, dict) else {}
