"""template.yaml declares exactly the queue topology; its functions, layers and settings fit the package."""

from __future__ import annotations

import copy
import json
import tomllib
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import Any, get_args

import pytest
from cfnlint.api import lint
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers.template_topology import (
    QUEUE_PREFIX,
    Template,
    expected_queue_names,
    literal_text,
    load_template,
    queue_logical_ids,
    referenced_id,
    resources,
    topology_violations,
)
from tgops import metrics, tracing
from tgops.config import SECRET_FIELDS, Settings, env_name
from tgops.messaging import topology

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE_PATH = ROOT / "template.yaml"
FUNCTIONS_DIR = ROOT / "functions"
LAYER_REQUIREMENTS = ROOT / "layers" / "deps" / "requirements.txt"
RUNTIME_PROVIDED = {"boto3", "botocore"}  # the Lambda Python runtime ships them
WORKER_ONLY = {"telethon"}
SECRETS_MANAGER_SETTINGS = (
    *SECRET_FIELDS,
    "database_url",
    "upstash_redis_rest_url",
    "upstash_redis_rest_token",
)
LAMBDA_CONSUMERS = tuple(spec for spec in topology.QUEUES if spec.consumer.runtime == "lambda")
EVERY_TOPOLOGY_FUNCTION = frozenset(
    [spec.consumer.name for spec in LAMBDA_CONSUMERS] + [schedule.name for schedule in topology.SCHEDULES]
)


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template(TEMPLATE_PATH)


def present_functions() -> frozenset[str]:
    return frozenset(path.parent.name for path in FUNCTIONS_DIR.glob("*/app.py"))


def function_globals(template: Template) -> dict[str, Any]:
    return template["Globals"]["Function"]


def test_template_declares_exactly_the_topology(template):
    assert topology_violations(template, present_functions()) == []


def test_queue_names_are_the_topology_queues_and_their_dlqs(template):
    assert set(queue_logical_ids(template)) == expected_queue_names()
    assert len(expected_queue_names()) == 2 * len(topology.QUEUES)


def test_queue_names_use_the_prefix_the_functions_get_as_tgops_queue_prefix(template):
    variables = function_globals(template)["Environment"]["Variables"]
    assert literal_text(variables["TGOPS_QUEUE_PREFIX"]) == QUEUE_PREFIX


# --- the checker can fail: a template wired as the topology says passes, every mutation of it is caught


def pascal(name: str) -> str:
    return "".join(part.title() for part in name.replace("-", "_").split("_"))


def with_topology_functions(template: Template) -> Template:
    """A copy of the template with every Lambda consumer and scheduled function the topology names."""
    wired = copy.deepcopy(template)
    queue_ids = queue_logical_ids(wired)
    for spec in LAMBDA_CONSUMERS:
        consumer = spec.consumer
        wired["Resources"][f"{pascal(consumer.name)}Function"] = function_resource(
            wired,
            consumer.name,
            consumer.timeout_sec,
            {
                "Queue": {
                    "Type": "SQS",
                    "Properties": {
                        "Queue": {"Fn::GetAtt": [queue_ids[spec.physical_name(QUEUE_PREFIX)], "Arn"]},
                        "BatchSize": consumer.batch_size,
                        "FunctionResponseTypes": ["ReportBatchItemFailures"],
                        "ScalingConfig": {"MaximumConcurrency": consumer.concurrency},
                    },
                }
            },
        )
    for schedule in topology.SCHEDULES:
        wired["Resources"][f"{pascal(schedule.name)}Function"] = function_resource(
            wired,
            schedule.name,
            60,
            {"Tick": {"Type": "Schedule", "Properties": {"Schedule": schedule.expression}}},
        )
    return wired


def function_resource(
    template: Template, folder: str, timeout_sec: int, events: dict[str, Any]
) -> dict[str, Any]:
    """The function wired as given, keeping whatever else the template declares for it."""
    existing = copy.deepcopy(template["Resources"].get(f"{pascal(folder)}Function", {}))
    properties = existing.get("Properties", {}) | {
        "CodeUri": f"functions/{folder}/",
        "Handler": "app.handler",
        "Timeout": timeout_sec,
        "Events": events,
    }
    return existing | {"Type": "AWS::Serverless::Function", "Properties": properties}


@pytest.fixture(scope="module")
def wired_template(template: Template) -> Template:
    return with_topology_functions(template)


def test_checker_accepts_consumers_and_schedules_wired_as_the_topology_says(wired_template):
    assert topology_violations(wired_template, EVERY_TOPOLOGY_FUNCTION) == []


def test_the_wiring_the_checker_accepts_is_valid_sam(wired_template):
    assert [str(match) for match in lint(json.dumps(wired_template), regions=["us-east-1"])] == []


def event_properties(template: Template, function_id: str, event_id: str = "Queue") -> dict[str, Any]:
    return template["Resources"][function_id]["Properties"]["Events"][event_id]["Properties"]


def function_properties(template: Template, function_id: str) -> dict[str, Any]:
    return template["Resources"][function_id]["Properties"]


def queue_properties(template: Template, queue: str, dlq: bool = False) -> dict[str, Any]:
    spec = topology.queue(queue)
    name = spec.physical_dlq_name(QUEUE_PREFIX) if dlq else spec.physical_name(QUEUE_PREFIX)
    return template["Resources"][queue_logical_ids(template)[name]]["Properties"]


def alarm_id(template: Template, queue: str) -> str:
    dlq_id = queue_logical_ids(template)[topology.queue(queue).physical_dlq_name(QUEUE_PREFIX)]
    return next(
        alarm
        for alarm, properties in resources(template, "AWS::CloudWatch::Alarm").items()
        if referenced_id(properties["Dimensions"][0]["Value"], "QueueName") == dlq_id
    )


def alarm_properties(template: Template, queue: str) -> dict[str, Any]:
    return template["Resources"][alarm_id(template, queue)]["Properties"]


def arn_of(template: Template, queue: str, dlq: bool = False) -> dict[str, Any]:
    spec = topology.queue(queue)
    name = spec.physical_dlq_name(QUEUE_PREFIX) if dlq else spec.physical_name(QUEUE_PREFIX)
    return {"Fn::GetAtt": [queue_logical_ids(template)[name], "Arn"]}


def remove(template: Template, logical_id: str) -> None:
    del template["Resources"][logical_id]


def copy_resource(template: Template, logical_id: str, new_id: str) -> None:
    template["Resources"][new_id] = copy.deepcopy(template["Resources"][logical_id])


def set_in(mapping: dict[str, Any], key: str, value: Any) -> None:
    mapping[key] = value


STRAY_QUEUE = {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": {"Fn::Sub": "${AWS::StackName}-stray"}}}

MUTATIONS: dict[str, tuple[Callable[[Template], None], str]] = {
    "wrong batch size": (
        lambda t: set_in(event_properties(t, "DmConsumerFunction"), "BatchSize", 7),
        "BatchSize must be 10",
    ),
    "no partial batch response": (
        lambda t: set_in(event_properties(t, "BroadcastConsumerFunction"), "FunctionResponseTypes", []),
        "ReportBatchItemFailures",
    ),
    "wrong maximum concurrency": (
        lambda t: set_in(event_properties(t, "GroupConsumerFunction"), "ScalingConfig", {}),
        "MaximumConcurrency must be 10",
    ),
    "consumer timeout differs from the topology": (
        lambda t: set_in(function_properties(t, "DmConsumerFunction"), "Timeout", 40),
        "Timeout must be 30",
    ),
    "queue read by a function the topology does not name": (
        lambda t: set_in(function_properties(t, "DmConsumerFunction"), "CodeUri", "functions/other/"),
        "consumed by dm_consumer, not by functions/other/",
    ),
    "Lambda reading a Fargate queue": (
        lambda t: set_in(event_properties(t, "DmConsumerFunction"), "Queue", arn_of(t, "tg-inspect")),
        "consumed by the Fargate worker inspect",
    ),
    "Lambda reading a DLQ": (
        lambda t: set_in(event_properties(t, "DmConsumerFunction"), "Queue", arn_of(t, "dm_queue", dlq=True)),
        "must read a topology queue",
    ),
    "wrong schedule rate": (
        lambda t: set_in(event_properties(t, "DispatchSetupFunction", "Tick"), "Schedule", "rate(1 minute)"),
        "schedule must be rate(5 minutes)",
    ),
    "schedule on a function topology does not schedule": (
        lambda t: set_in(function_properties(t, "PollOrdersFunction"), "CodeUri", "functions/http_api/"),
        "topology.SCHEDULES does not list it",
    ),
    "consumer folder present but not wired": (
        lambda t: remove(t, "DmConsumerFunction"),
        "functions/dm_consumer/ exists but no function of that CodeUri consumes dm_queue",
    ),
    "scheduled folder present but not wired": (
        lambda t: remove(t, "GroupTickFunction"),
        "functions/group_tick/ exists but no function of that CodeUri has its schedule event",
    ),
    "missing alarm": (
        lambda t: remove(t, alarm_id(t, "tg-inspect")),
        "tg-inspect-dlq: expected exactly one depth alarm, found 0",
    ),
    "second alarm": (
        lambda t: copy_resource(t, alarm_id(t, "dm_queue"), "ExtraAlarm"),
        "dm_queue-dlq: expected exactly one depth alarm, found 2",
    ),
    "wrong alarm threshold": (
        lambda t: set_in(alarm_properties(t, "tgms_queue"), "Threshold", 100),
        "Threshold must be 10",
    ),
    "alarm notifying nobody": (
        lambda t: set_in(alarm_properties(t, "tg-setup-fast"), "AlarmActions", []),
        "must notify an SNS topic",
    ),
    "queue not in the topology": (
        lambda t: set_in(t["Resources"], "StrayQueue", STRAY_QUEUE),
        "queue ${AWS::StackName}-stray (StrayQueue) is not in topology",
    ),
    "missing DLQ": (
        lambda t: remove(t, queue_logical_ids(t)[topology.SETUP_MEDIA.physical_dlq_name(QUEUE_PREFIX)]),
        "queue ${AWS::StackName}-tg-setup-media-dlq of the topology is missing",
    ),
    "redrive into another queue's DLQ": (
        lambda t: set_in(
            queue_properties(t, "tg-inspect")["RedrivePolicy"],
            "deadLetterTargetArn",
            arn_of(t, "tg-setup-fast", dlq=True),
        ),
        "tg-inspect: RedrivePolicy must target its own DLQ",
    ),
    "wrong maxReceiveCount": (
        lambda t: set_in(queue_properties(t, "group_message_queue")["RedrivePolicy"], "maxReceiveCount", 5),
        "maxReceiveCount must be 3",
    ),
    "wrong visibility timeout": (
        lambda t: set_in(queue_properties(t, "tgms_queue"), "VisibilityTimeout", 60),
        "tgms_queue: VisibilityTimeout must be 360",
    ),
    "FIFO flag dropped": (
        lambda t: set_in(queue_properties(t, "dm_queue", dlq=True), "FifoQueue", False),
        "dm_queue-dlq: FifoQueue must be True",
    ),
    "retention changed": (
        lambda t: set_in(queue_properties(t, "tg-setup-fast"), "MessageRetentionPeriod", 60),
        "tg-setup-fast: MessageRetentionPeriod must be 345600",
    ),
    "DLQ without RedriveAllowPolicy": (
        lambda t: queue_properties(t, "tg-setup-media", dlq=True).pop("RedriveAllowPolicy"),
        "tg-setup-media-dlq: RedriveAllowPolicy",
    ),
    "DLQ allowing redrive from another queue": (
        lambda t: set_in(
            queue_properties(t, "dm_queue", dlq=True),
            "RedriveAllowPolicy",
            {"redrivePermission": "byQueue", "sourceQueueArns": [arn_of(t, "tgms_queue")]},
        ),
        "dm_queue-dlq: RedriveAllowPolicy",
    ),
}


@pytest.mark.parametrize("mutation", MUTATIONS)
def test_checker_reports_each_departure_from_the_topology(wired_template, mutation):
    mutate, expected = MUTATIONS[mutation]
    mutated = copy.deepcopy(wired_template)
    mutate(mutated)
    violations = topology_violations(mutated, EVERY_TOPOLOGY_FUNCTION)
    assert any(expected in violation for violation in violations), violations


# --- functions, layers, settings


def test_http_api_function_takes_every_route_of_the_api(template):
    functions = resources(template, "AWS::Serverless::Function")
    (api,) = [function for function in functions.values() if function["CodeUri"] == "functions/http_api/"]
    assert api["Handler"] == "app.handler"
    (event,) = api["Events"].values()
    assert event["Type"] == "HttpApi"
    assert referenced_id(event["Properties"]["ApiId"]) in resources(template, "AWS::Serverless::HttpApi")
    # Without Path and Method SAM declares the $default route: FastAPI sees every request.
    assert "Path" not in event["Properties"] and "Method" not in event["Properties"]


def test_every_function_gets_the_dependency_layer_and_the_tgops_layer(template):
    layers = resources(template, "AWS::Serverless::LayerVersion")
    content = {logical_id: properties["ContentUri"] for logical_id, properties in layers.items()}
    assert sorted(content.values()) == ["layers/deps/", "shared/"]
    assert {referenced_id(layer) for layer in function_globals(template)["Layers"]} == set(layers)
    runtime = function_globals(template)["Runtime"]
    (architecture,) = function_globals(template)["Architectures"]
    for logical_id, properties in layers.items():
        assert properties["CompatibleRuntimes"] == [runtime]
        assert properties["CompatibleArchitectures"] == [architecture]
        assert template["Resources"][logical_id]["Metadata"]["BuildArchitecture"] == architecture
    for logical_id, properties in resources(template, "AWS::Serverless::Function").items():
        assert "Layers" not in properties, f"{logical_id} must keep the global layers"


def test_globals_name_the_service_and_a_valid_tgops_env_per_stage(template):
    variables = function_globals(template)["Environment"]["Variables"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "tgops"
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == metrics.NAMESPACE
    assert function_globals(template)["Tracing"] == "Active"
    assert variables["TGOPS_ENV"] == {"Fn::FindInMap": ["Stage", {"Ref": "Env"}, "TgopsEnv"]}
    stages = template["Mappings"]["Stage"]
    assert set(stages) == set(template["Parameters"]["Env"]["AllowedValues"])
    allowed_envs = get_args(Settings.model_fields["env"].annotation)
    assert all(stage["TgopsEnv"] in allowed_envs for stage in stages.values())
    assert "production" in {stage["TgopsEnv"] for stage in stages.values()}


def test_every_secret_is_read_at_run_time_from_secrets_manager_never_resolved_at_deploy(template):
    variables = function_globals(template)["Environment"]["Variables"]
    assert referenced_id(variables["TGOPS_SECRETS_NAME"]) == "SecretsName"
    assert not [env_name(field) for field in SECRETS_MANAGER_SETTINGS if env_name(field) in variables]
    assert "resolve:secretsmanager" not in TEMPLATE_PATH.read_text()
    for function_id, properties in resources(template, "AWS::Serverless::Function").items():
        policies = [
            next(iter(policy)) for policy in properties.get("Policies", []) if isinstance(policy, dict)
        ]
        assert "AWSSecretsManagerGetSecretValuePolicy" in policies, function_id


def test_outputs_give_the_api_url_and_every_queue_url(template):
    outputs = template["Outputs"]
    assert "${HttpApi}.execute-api" in literal_text(outputs["ApiUrl"]["Value"])
    output_refs = {referenced_id(output["Value"]) for output in outputs.values()}
    assert set(queue_logical_ids(template).values()) <= output_refs


def layer_requirements() -> dict[str, Requirement]:
    lines = [line.strip() for line in LAYER_REQUIREMENTS.read_text().splitlines()]
    requirements = [Requirement(line) for line in lines if line and not line.startswith("#")]
    return {canonicalize_name(requirement.name): requirement for requirement in requirements}


def test_layer_pins_every_runtime_dependency_within_pyproject_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(line) for line in project["dependencies"]]
    pinned = layer_requirements()
    needed = {canonicalize_name(requirement.name) for requirement in declared} - RUNTIME_PROVIDED
    assert set(pinned) == needed
    for requirement in declared:
        if canonicalize_name(requirement.name) in RUNTIME_PROVIDED:
            continue
        layer = pinned[canonicalize_name(requirement.name)]
        (pin,) = layer.specifier
        assert pin.operator == "==", f"{layer} must pin one version"
        assert requirement.specifier.contains(pin.version), f"{layer} is outside pyproject's {requirement}"
        assert requirement.extras <= layer.extras, f"{layer} lacks the extras of {requirement}"


def test_layer_leaves_out_worker_only_packages():
    assert not WORKER_ONLY & set(layer_requirements())


def test_samconfig_deploys_each_stage_as_its_own_stack_with_its_own_secret(template):
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    stages = template["Parameters"]["Env"]["AllowedValues"]
    stacks = set()
    for stage in stages:
        deploy = config[stage]["deploy"]["parameters"]
        overrides = dict(item.split("=", 1) for item in deploy["parameter_overrides"].split())
        assert overrides["Env"] == stage
        assert overrides["SecretsName"].endswith(stage)
        stacks.add(config[stage]["global"]["parameters"]["stack_name"])
    assert len(stacks) == len(stages)


FARGATE_WORKERS = sorted(
    {spec.consumer.name for spec in topology.QUEUES if spec.consumer.runtime == "fargate"}
)


def worker_task_definition(template: Template, worker: str) -> tuple[str, dict[str, Any]]:
    for logical_id, properties in resources(template, "AWS::ECS::TaskDefinition").items():
        for container in properties["ContainerDefinitions"]:
            if {"Name": "TGOPS_WORKER", "Value": worker} in container.get("Environment", []):
                return logical_id, properties
    raise AssertionError(f"no task definition runs the {worker} worker")


def scaling_metric_queues(template: Template, service_id: str) -> set[str]:
    """Queue logical ids in the backlog-per-task metric of the policy that scales `service_id`."""
    targets = {
        logical_id
        for logical_id, properties in resources(
            template, "AWS::ApplicationAutoScaling::ScalableTarget"
        ).items()
        if f"${{{service_id}.Name}}" in (literal_text(properties["ResourceId"]) or "")
    }
    queues: set[str] = set()
    for properties in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values():
        if referenced_id(properties["ScalingTargetId"]) not in targets:
            continue
        tracking = properties["TargetTrackingScalingPolicyConfiguration"]
        metrics_ = tracking["CustomizedMetricSpecification"]["Metrics"]
        expression = next(metric["Expression"] for metric in metrics_ if metric.get("ReturnData"))
        assert "/ IF(tasks > 0, tasks, 1)" in expression, expression
        for metric in metrics_:
            stat = metric.get("MetricStat", {}).get("Metric", {})
            if stat.get("MetricName") == "ApproximateNumberOfMessagesVisible":
                assert metric["Id"] in expression
                queues |= {referenced_id(d["Value"], "QueueName") for d in stat["Dimensions"]}
    return queues


@pytest.mark.parametrize("worker", FARGATE_WORKERS)
def test_every_fargate_worker_scales_on_the_backlog_of_all_its_queues_per_running_task(template, worker):
    task_definition_id, _ = worker_task_definition(template, worker)
    [service_id] = [
        logical_id
        for logical_id, properties in resources(template, "AWS::ECS::Service").items()
        if referenced_id(properties["TaskDefinition"]) == task_definition_id
    ]
    queue_ids = queue_logical_ids(template)
    worker_queues = {
        queue_ids[spec.physical_name(QUEUE_PREFIX)]
        for spec in topology.QUEUES
        if spec.consumer.name == worker
    }
    assert scaling_metric_queues(template, service_id) == worker_queues


@pytest.mark.parametrize("worker", FARGATE_WORKERS)
def test_every_fargate_worker_has_an_xray_daemon_beside_it_and_may_write_traces(template, worker):
    task_definition_id, properties = worker_task_definition(template, worker)
    daemons = [
        c for c in properties["ContainerDefinitions"] if referenced_id(c["Image"]) == "XrayDaemonImage"
    ]
    assert [daemon["PortMappings"] for daemon in daemons] == [[{"ContainerPort": 2000, "Protocol": "udp"}]]
    assert daemons[0]["Essential"] is False
    [worker_container] = [c for c in properties["ContainerDefinitions"] if c not in daemons]
    address = {"Name": tracing.DAEMON_ENV, "Value": "127.0.0.1:2000"}
    assert address in worker_container["Environment"]  # tgops.tracing traces a worker only with it
    role = resources(template, "AWS::IAM::Role")[referenced_id(properties["TaskRoleArn"], "Arn")]
    policies = [literal_text(arn) or "" for arn in role.get("ManagedPolicyArns", [])]
    assert any(arn.endswith(":policy/AWSXRayDaemonWriteAccess") for arn in policies), task_definition_id


def send_grants(statements: list[dict[str, Any]]) -> set[str]:
    """Queue logical ids these IAM statements let send, "*" for the stack's every queue."""
    granted: set[str] = set()
    for statement in statements:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        if statement.get("Effect") != "Allow" or "sqs:SendMessage" not in actions:
            continue
        targets = (
            statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        )
        for target in targets:
            if (literal_text(target) or "").endswith(":${AWS::StackName}-*"):
                granted.add("*")
            elif referenced_id(target, "Arn"):
                granted.add(referenced_id(target, "Arn"))
    return granted


def queues_allowed_to_send(template: Template, producer: str) -> set[str]:
    if producer in {spec.consumer.name for spec in topology.QUEUES if spec.consumer.runtime == "fargate"}:
        _, task_definition = worker_task_definition(template, producer)
        role = resources(template, "AWS::IAM::Role")[referenced_id(task_definition["TaskRoleArn"], "Arn")]
        return send_grants([s for policy in role["Policies"] for s in policy["PolicyDocument"]["Statement"]])
    [function] = [
        properties
        for properties in resources(template, "AWS::Serverless::Function").values()
        if PurePosixPath(properties["CodeUri"]).name == producer
    ]
    granted: set[str] = set()
    for policy in function.get("Policies", []):
        if "SQSSendMessagePolicy" in policy:
            granted.add(referenced_id(policy["SQSSendMessagePolicy"]["QueueName"], "QueueName"))
        granted |= send_grants(policy.get("Statement", []))
    return granted


@pytest.mark.parametrize("spec", topology.QUEUES, ids=lambda spec: spec.name)
def test_every_producer_of_a_queue_may_send_to_it(template, spec):
    queue_id = queue_logical_ids(template)[spec.physical_name(QUEUE_PREFIX)]
    refused = [
        producer
        for producer in ("http_api", *spec.producers)
        if not queues_allowed_to_send(template, producer) & {queue_id, "*"}
    ]
    assert refused == [], f"may not send to {spec.name}"
