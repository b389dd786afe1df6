import pytest

from tests.conftest import load_event
from tgops.ingress.routing import DM_QUEUE, TGMS_QUEUE, route_update

GROUP_CHAT = -1001987654321
USER = 5512345678


@pytest.mark.parametrize(
    ("event", "queue", "chat_id"),
    [
        ("telegram_update_private_message", DM_QUEUE, USER),
        ("telegram_update_callback_query", DM_QUEUE, USER),
        ("telegram_update_group_command", DM_QUEUE, GROUP_CHAT),
        ("telegram_update_group_message", TGMS_QUEUE, GROUP_CHAT),
        ("telegram_update_join_request", TGMS_QUEUE, GROUP_CHAT),
        ("telegram_update_my_chat_member", TGMS_QUEUE, GROUP_CHAT),
    ],
)
def test_each_update_goes_to_the_queue_that_handles_it(event, queue, chat_id):
    route = route_update(load_event(event))

    assert (route.queue, route.chat_id) == (queue, chat_id)
    assert route.group_id(7) == f"7:{chat_id}"


@pytest.mark.parametrize("command", ["/init", "/activate@tgops_bot"])
def test_init_and_activate_in_a_group_go_to_the_dm_queue_even_without_entities(command):
    update = load_event("telegram_update_group_message")
    update["message"]["text"] = command

    assert route_update(update).queue == DM_QUEUE


def test_callback_query_without_its_message_is_grouped_by_the_user():
    update = load_event("telegram_update_callback_query")
    del update["callback_query"]["message"]

    route = route_update(update)

    assert (route.queue, route.chat_id) == (DM_QUEUE, USER)


def test_edited_group_message_is_group_traffic_and_edited_private_message_is_unhandled():
    group = load_event("telegram_update_group_message")
    group["edited_message"] = group.pop("message")
    private = load_event("telegram_update_private_message")
    private["edited_message"] = private.pop("message")

    assert route_update(group).queue == TGMS_QUEUE
    unhandled = route_update(private)
    assert (unhandled.update_type, unhandled.queue) == ("edited_message", None)


@pytest.mark.parametrize(
    ("update", "update_type"),
    [
        ({"update_id": 1, "inline_query": {"id": "1", "query": "x"}}, "inline_query"),
        ({"update_id": 1, "channel_post": {"chat": {"id": -100, "type": "channel"}}}, "channel_post"),
        ({"update_id": 1, "invented_by_someone": {}}, "other"),
        ({"update_id": 1}, "empty"),
        ({"update_id": 1, "message": "not an object"}, "message"),
        ({"update_id": 1, "message": {"text": "no chat"}}, "message"),
        ({"update_id": 1, "chat_join_request": {"chat": {"id": "not an int"}}}, "chat_join_request"),
    ],
)
def test_updates_nobody_handles_are_not_routed(update, update_type):
    route = route_update(update)

    assert (route.update_type, route.queue) == (update_type, None)
