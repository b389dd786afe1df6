"""The OpenAPI document: valid, complete (every request item and every success answer has a schema),
credentials as security schemes, and the provider API's real answers match what it documents."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema
import pytest
from openapi_spec_validator import validate

from tests.provider.conftest import add_accounts, add_order
from tgops.api.app import create_app
from tgops.config import Settings
from tgops.provider.generation import generate_tasks
from tgops.runtime import Runtime

PROVIDER = "/api/provider/telegram"


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app(Runtime(Settings())).openapi()


def operations(document):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield f"{method.upper()} {path}", operation


def arrays_in(schema: Any, document: dict[str, Any], seen: frozenset[str] = frozenset()):
    """Every array schema reachable from `schema`, following $refs into the components once each."""
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if ref and ref not in seen:
            yield from arrays_in(
                document["components"]["schemas"][ref.rsplit("/", 1)[1]], document, seen | {ref}
            )
        if schema.get("type") == "array":
            yield schema
        for value in schema.values():
            yield from arrays_in(value, document, seen)
    elif isinstance(schema, list):
        for value in schema:
            yield from arrays_in(value, document, seen)


def test_the_document_is_valid_openapi(document):
    validate(document)


def test_every_array_in_a_request_or_a_success_says_what_its_items_are(document):
    untyped = []
    for label, operation in operations(document):
        bodies = [operation.get("requestBody", {})]
        bodies += [answer for status, answer in operation["responses"].items() if status.startswith("2")]
        for array in arrays_in(bodies, document):
            if not array.get("items"):
                untyped.append(label)

    assert untyped == []


def test_every_success_answer_has_a_schema(document):
    missing = [
        label
        for label, operation in operations(document)
        for status, answer in operation["responses"].items()
        if status.startswith("2")
        and not any(media.get("schema") for media in answer.get("content", {}).values())
    ]

    assert missing == []


def test_credentials_are_security_schemes_not_header_parameters(document):
    schemes = document["components"]["securitySchemes"]

    assert schemes["ProviderToken"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-Provider-Token",
        "description": schemes["ProviderToken"]["description"],
    }
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    for label, operation in operations(document):
        headers = {parameter["name"].lower() for parameter in operation.get("parameters", [])}
        assert not headers & {"x-provider-token", "authorization", "x-api-key"}, label
        if " /api/provider/" in label:
            assert operation["security"] == [{"ProviderToken": []}], label
        if " /admin/" in label:
            assert operation["security"] == [{"HTTPBearer": []}], label


def test_no_operation_documents_a_refusal_it_cannot_give(document):
    answers = {label: set(operation["responses"]) for label, operation in operations(document)}

    assert not answers[f"POST {PROVIDER}/tasks/pull"] & {"404", "409"}
    assert not answers[f"POST {PROVIDER}/accounts/sync"] & {"404", "409"}
    assert {"404", "409"} <= answers[f"POST {PROVIDER}/tasks/report"]
    assert "422" not in answers["POST /api/webhooks/telegram"]  # no parameter or model to fail
    assert not any("400" in codes for label, codes in answers.items() if label.startswith(("GET", "DELETE")))


def success_schema(document, path: str) -> dict[str, Any]:
    schema = document["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    return {**schema, "components": document["components"]}


async def test_the_provider_apis_real_answers_match_their_documented_schemas(
    settings, database_url, document
):
    runtime = Runtime(settings)
    headers = {"X-Provider-Token": settings.provider_token.get_secret_value()}
    transport = httpx.ASGITransport(app=create_app(runtime))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as api:
            synced = await api.post(
                f"{PROVIDER}/accounts/sync",
                json={"accounts": [{"provider_account_id": "a1", "phone": "+1"}, {"phone": "no id"}]},
            )
            add_accounts(database_url, 2)
            add_order(database_url, remains=2)
            await generate_tasks(await runtime.database(), runtime.redis(), runtime.settings, limit=10)
            pulled = await api.post(f"{PROVIDER}/tasks/pull", json={"limit": 10})
            [task, *_] = pulled.json()["tasks"]
            report = {"task_id": task["task_id"], "state": "done", "lease_version": task["lease_version"]}
            single = await api.post(f"{PROVIDER}/tasks/report", json=report)
            batch = await api.post(
                f"{PROVIDER}/tasks/report", json={"reports": [report, {"task_id": "x" * 26, "state": "done"}]}
            )
    finally:
        await runtime.close()

    for path, response in [
        ("accounts/sync", synced),
        ("tasks/pull", pulled),
        ("tasks/report", single),
        ("tasks/report", batch),
    ]:
        assert response.status_code == 200, response.text
        jsonschema.validate(response.json(), success_schema(document, f"{PROVIDER}/{path}"))
    assert synced.json()["errors"] and batch.json()["results"][1]["ok"] is False
