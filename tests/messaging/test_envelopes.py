from __future__ import annotations

import json
from datetime import timedelta
from typing import ClassVar, Literal

import pytest
from ulid import ULID

from tgops.messaging.envelopes import Message, decode, decode_any, encode
from tgops.messaging.errors import InvalidMessage


class Ping(Message):
    kind: Literal["ping"] = "ping"
    chat_id: int
    text: str


class Pong(Message):
    kind: Literal["pong"] = "pong"


class PingV2(Message):
    compatible_schema_versions: ClassVar[tuple[int, ...]] = (1,)

    kind: Literal["ping"] = "ping"
    schema_version: int = 2
    chat_id: int
    text: str = ""


def test_round_trip_keeps_every_field():
    message = Ping(chat_id=-100123, text="hello")

    decoded = decode(encode(message), Ping)

    assert decoded == message
    assert decoded.schema_version == 1


def test_envelope_defaults_are_a_fresh_ulid_and_utc_now():
    first, second = Ping(chat_id=1, text="a"), Ping(chat_id=1, text="a")

    assert first.message_id != second.message_id
    assert str(ULID.from_str(first.message_id)) == first.message_id
    assert first.created_at.utcoffset() == timedelta(0)


def test_encoded_body_names_its_kind_and_version():
    payload = json.loads(encode(Ping(chat_id=1, text="a")))

    assert payload["kind"] == "ping"
    assert payload["schema_version"] == 1


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{not json", "body is not valid JSON"),
        ("[1, 2]", "body is a JSON list, not an object"),
        ('{"kind": "pong", "schema_version": 1}', "wrong kind 'pong'; expected 'ping'"),
        ('{"schema_version": 1, "chat_id": 1, "text": "a"}', "wrong kind None; expected 'ping'"),
        ('{"kind": "ping", "schema_version": 2, "chat_id": 1, "text": "a"}', "unsupported schema_version 2"),
        ('{"kind": "ping", "text": "a"}', "invalid 'ping' message: chat_id: Field required"),
        ('{"kind": "ping", "chat_id": "x", "text": "a"}', "chat_id: Input should be a valid integer"),
    ],
)
def test_bad_bodies_are_refused_with_a_reason(body, reason):
    with pytest.raises(InvalidMessage) as raised:
        decode(body, Ping)

    assert reason in raised.value.reason


def test_a_newer_model_reads_the_versions_it_declares_compatible():
    old_body = encode(Ping(chat_id=7, text="old"))

    upgraded = decode(old_body, PingV2)

    assert (upgraded.chat_id, upgraded.schema_version) == (7, 1)
    with pytest.raises(InvalidMessage, match=r"unsupported schema_version 3 .*supported: 2, 1"):
        decode('{"kind": "ping", "schema_version": 3, "chat_id": 1}', PingV2)


def test_decode_any_picks_the_model_by_kind():
    assert isinstance(decode_any(encode(Pong()), [Ping, Pong]), Pong)
    assert decode_any(encode(Ping(chat_id=1, text="a")), [Ping, Pong]).chat_id == 1
    with pytest.raises(InvalidMessage, match="unexpected kind 'pang'; expected one of ping, pong"):
        decode_any('{"kind": "pang"}', [Ping, Pong])


def test_a_model_without_a_kind_cannot_be_decoded_into():
    with pytest.raises(TypeError, match="must declare `kind"):
        decode(encode(Ping(chat_id=1, text="a")), Message)


def test_messages_are_immutable():
    message = Ping(chat_id=1, text="a")

    with pytest.raises(ValueError):
        message.text = "b"
