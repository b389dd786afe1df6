import json

import pytest

from tgops.ingress.webhook import MAX_UPDATE_ID, InvalidUpdate, parse_update


def test_parse_update_keeps_the_whole_update():
    update = {"update_id": 42, "message": {"chat": {"id": 1, "type": "private"}, "text": "hi"}}

    assert parse_update(json.dumps(update).encode()) == update


def test_an_integral_float_update_id_is_that_integer():
    update = parse_update(b'{"update_id": 42.0}')

    assert update["update_id"] == 42 and isinstance(update["update_id"], int)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "JSON object, not a JSON list"),
        (b'"text"', "JSON object, not a JSON str"),
        (b'{"message": {}}', "update_id is missing"),
        (b'{"update_id": "12"}', "update_id must be an integer, not str"),
        (b'{"update_id": 12.5}', "update_id must be an integer, not float"),
        (b'{"update_id": 1e400}', "update_id must be an integer, not float"),
        (b'{"update_id": true}', "update_id must be an integer, not bool"),
        (b'{"update_id": -1}', "between 0 and"),
        (f'{{"update_id": {MAX_UPDATE_ID + 1}}}'.encode(), "between 0 and"),
    ],
)
def test_parse_update_refuses_what_is_not_an_update_with_a_reason(body, reason):
    with pytest.raises(InvalidUpdate, match=reason):
        parse_update(body)
