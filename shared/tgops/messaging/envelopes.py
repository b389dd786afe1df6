"""Queue message models: one pydantic model per kind of message, all sharing one envelope.

A subclass declares its kind as a one-value Literal with that value as default:

    class InspectOrder(Message):
        kind: Literal["inspect_order"] = "inspect_order"
        order_id: int

A model that changes shape raises its `schema_version` default and lists the older versions it
still reads in `compatible_schema_versions`; `decode` refuses any other version with a reason.

Every message carries the `correlation_id` of the scope it was created in (tgops.correlation), so
its consumer logs under the id of the request or run that queued it. It is optional: a message
queued before the field existed still decodes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ulid import ULID

from tgops import correlation
from tgops.messaging.errors import InvalidMessage
from tgops.validation import describe

M = TypeVar("M", bound="Message")


class Message(BaseModel):
    model_config = ConfigDict(frozen=True)

    compatible_schema_versions: ClassVar[tuple[int, ...]] = ()

    schema_version: int = 1
    message_id: str = Field(default_factory=lambda: str(ULID()))
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    correlation_id: str | None = Field(default_factory=correlation.correlation_id, max_length=128)

    @classmethod
    def kind_name(cls) -> str:
        field = cls.model_fields.get("kind")
        values = get_args(field.annotation) if field else ()
        if len(values) != 1:
            raise TypeError(f'{cls.__name__} must declare `kind: Literal["..."]` with exactly one value')
        return values[0]

    @classmethod
    def supported_schema_versions(cls) -> tuple[int, ...]:
        return (cls.model_fields["schema_version"].default, *cls.compatible_schema_versions)


def encode(message: Message) -> str:
    return message.model_dump_json()


def decode(body: str, model: type[M]) -> M:
    payload = _json_object(body)
    _check_kind(payload, model.kind_name())
    return _validate(payload, model)


def decode_any(body: str, models: Iterable[type[Message]]) -> Message:
    """Decode a body into whichever of `models` declares its kind (one queue, several kinds)."""
    by_kind = {model.kind_name(): model for model in models}
    payload = _json_object(body)
    kind = payload.get("kind")
    if kind not in by_kind:
        raise InvalidMessage(f"unexpected kind {kind!r}; expected one of {', '.join(sorted(by_kind))}")
    return _validate(payload, by_kind[kind])


def _json_object(body: str) -> dict[str, Any]:
    try:
        payload = json.loads(body)
    except (TypeError, ValueError) as error:
        raise InvalidMessage(f"body is not valid JSON: {error}") from None
    if not isinstance(payload, dict):
        raise InvalidMessage(f"body is a JSON {type(payload).__name__}, not an object")
    return payload


def _check_kind(payload: dict[str, Any], expected: str) -> None:
    kind = payload.get("kind")
    if kind != expected:
        raise InvalidMessage(f"wrong kind {kind!r}; expected {expected!r}")


def _validate(payload: dict[str, Any], model: type[M]) -> M:
    supported = model.supported_schema_versions()
    version = payload.get("schema_version", supported[0])
    if version not in supported:
        raise InvalidMessage(
            f"unsupported schema_version {version!r} for kind {model.kind_name()!r}; "
            f"supported: {', '.join(map(str, supported))}"
        )
    try:
        return model.model_validate(payload)
    except ValidationError as error:
        raise InvalidMessage(f"invalid {model.kind_name()!r} message: {describe(error)}") from None
