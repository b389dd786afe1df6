"""The public API: broadcasts queued as typed jobs, managed groups read and changed in Postgres."""

from __future__ import annotations

import psycopg
import pytest
import redis

from tests.api.public_api_support import public_api
from tgops.api.api_keys import create_api_key
from tgops.broadcast.jobs import BroadcastJob, PhotoContent, TextContent, UrlButton
from tgops.broadcast.submit import fingerprint
from tgops.cache import keys
from tgops.messaging.envelopes import decode
from tgops.messaging.errors import QueueUnavailable

SEND = "/api/send_messages"
GROUPS = "/api/groups"


@pytest.fixture
async def api(settings, db):
    created = await create_api_key(db, "tests")
    async with public_api(settings) as api:
        api.client.headers["X-API-Key"] = created.key
        api.key_id = created.record.id
        yield api


def queued_jobs(api) -> list[BroadcastJob]:
    return [decode(body, BroadcastJob) for body in api.queues.bodies("group_message_queue")]


# --- send_messages ---------------------------------------------------------------------------


async def test_a_text_broadcast_to_every_active_group_is_queued_as_one_job(api):
    response = await api.client.post(SEND, json={"content": {"type": "text", "text": "Live now!"}})

    assert response.status_code == 202
    body = response.json()
    (job,) = queued_jobs(api)
    assert body == {
        "job_id": job.message_id,
        "replayed": False,
        "queue": "group_message_queue",
        "target": "all_active_groups",
        "chat_count": None,
    }
    assert job.content == TextContent(type="text", text="Live now!")
    assert job.chat_ids is None and job.buttons == [] and job.api_key_id == api.key_id
    assert job.schema_version == 1 and job.kind == "broadcast"


async def test_a_photo_with_buttons_to_listed_chats_keeps_each_chat_once(api):
    response = await api.client.post(
        SEND,
        json={
            "content": {
                "type": "photo",
                "photo_url": "https://cdn.example.com/live.jpg",
                "caption": "<b>Live</b>",
                "parse_mode": "HTML",
            },
            "buttons": [
                [{"text": "JOIN LIVE", "url": "https://t.me/live"}, {"text": "BAN", "callback_data": "ban:7"}]
            ],
            "chat_ids": [-1001, 42, -1001],
        },
    )

    assert response.status_code == 202
    assert response.json()["target"] == "chat_ids" and response.json()["chat_count"] == 2
    (job,) = queued_jobs(api)
    assert job.chat_ids == [-1001, 42]
    assert isinstance(job.content, PhotoContent) and job.content.caption == "<b>Live</b>"
    assert job.buttons[0][0] == UrlButton(text="JOIN LIVE", url="https://t.me/live")
    assert job.buttons[0][1].callback_data == "ban:7"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({}, "content"),
        ({"content": {"type": "text", "text": "   "}}, "text"),
        ({"content": {"type": "text", "text": "a\u0000b"}}, "text"),
        ({"content": {"type": "text", "text": "x" * 4097}}, "text"),
        ({"content": {"type": "video", "text": "x"}}, "content"),
        ({"content": {"type": "photo", "photo_url": "ftp://host/p.jpg"}}, "photo_url"),
        ({"content": {"type": "photo", "photo_url": "https://h/p.jpg", "caption": "c" * 1025}}, "caption"),
        ({"content": {"type": "text", "text": "x"}, "chat_ids": []}, "chat_ids"),
        ({"content": {"type": "text", "text": "x"}, "chat_ids": [0]}, "chat_ids"),
        ({"content": {"type": "text", "text": "x"}, "chat_ids": [2**63]}, "chat_ids"),
        ({"content": {"type": "text", "text": "x"}, "buttons": [[]]}, "buttons"),
        (
            {
                "content": {"type": "text", "text": "x"},
                "buttons": [[{"text": "b", "url": "https://a", "callback_data": "c"}]],
            },
            "buttons",
        ),
        (
            {
                "content": {"type": "text", "text": "x"},
                "buttons": [[{"text": "b", "callback_data": "é" * 40}]],
            },
            "buttons",
        ),
        ({"content": {"type": "text", "text": "x"}, "chatids": [1]}, "chatids"),
    ],
)
async def test_invalid_broadcasts_are_refused_with_the_field_named_and_nothing_queued(api, payload, reason):
    response = await api.client.post(SEND, json=payload)

    assert response.status_code == 422
    assert any(reason in map(str, error["loc"]) for error in response.json()["detail"])
    assert api.queues.sent == []


async def test_a_broadcast_the_queue_cannot_take_answers_503_with_retry_after(api):
    class DownQueues:
        async def send(self, queue, body, **_):
            raise QueueUnavailable("send to tgops-group_message_queue: endpoint down")

    api.runtime.queue_sender = DownQueues()
    response = await api.client.post(SEND, json={"content": {"type": "text", "text": "x"}})

    assert response.status_code == 503 and response.headers["Retry-After"] == "5"
    assert "nothing was queued" in response.json()["detail"]


async def test_a_broadcast_without_a_key_is_refused_and_not_queued(api):
    response = await api.client.post(
        SEND, json={"content": {"type": "text", "text": "x"}}, headers={"X-API-Key": ""}
    )
    assert response.status_code == 401
    assert api.queues.sent == []


async def test_a_retry_with_the_same_idempotency_key_queues_nothing_new(api):
    payload = {"content": {"type": "text", "text": "once"}, "chat_ids": [-5]}
    headers = {"Idempotency-Key": "broadcast-2024-05-01"}

    first = await api.client.post(SEND, json=payload, headers=headers)
    retry = await api.client.post(SEND, json=payload, headers=headers)
    other_body = await api.client.post(SEND, json={**payload, "chat_ids": [-6]}, headers=headers)
    other_key = await api.client.post(SEND, json=payload, headers={"Idempotency-Key": "another"})

    assert first.status_code == retry.status_code == other_key.status_code == 202
    assert (first.json()["replayed"], retry.json()["replayed"]) == (False, True)
    assert retry.json()["job_id"] == first.json()["job_id"] != other_key.json()["job_id"]
    assert other_body.status_code == 409
    assert other_body.json()["detail"] == "this Idempotency-Key was used for a different request"
    assert [job.job_id for job in queued_jobs(api)] == [first.json()["job_id"], other_key.json()["job_id"]]


async def test_an_idempotency_key_whose_send_failed_can_be_retried(api):
    payload = {"content": {"type": "text", "text": "x"}}
    headers = {"Idempotency-Key": "k1"}

    class DownQueues:
        async def send(self, queue, body, **_):
            raise QueueUnavailable("endpoint down")

    api.runtime.queue_sender = DownQueues()
    failed = await api.client.post(SEND, json=payload, headers=headers)
    api.runtime.queue_sender = api.queues
    retried = await api.client.post(SEND, json=payload, headers=headers)

    assert failed.status_code == 503
    assert retried.status_code == 202 and retried.json()["replayed"] is False
    assert len(queued_jobs(api)) == 1


async def test_a_key_still_being_queued_is_a_conflict(api, redis_url):
    payload = {"content": {"type": "text", "text": "x"}}
    job = BroadcastJob(content=payload["content"], api_key_id=api.key_id)
    raw = redis.Redis.from_url(redis_url)
    raw.set(keys.idempotency("send_messages", api.key_id, "k2"), f"pending:{fingerprint(job)}:someone", ex=60)
    raw.close()

    response = await api.client.post(SEND, json=payload, headers={"Idempotency-Key": "k2"})

    assert response.status_code == 409 and "still being queued" in response.json()["detail"]
    assert api.queues.sent == []


@pytest.mark.parametrize("key", ["", "has space", "x" * 129, "ключ"])
async def test_a_malformed_idempotency_key_is_422(api, key):
    response = await api.client.post(
        SEND, json={"content": {"type": "text", "text": "x"}}, headers={"Idempotency-Key": key.encode()}
    )
    assert response.status_code == 422
    assert api.queues.sent == []


async def test_requests_while_postgres_is_unreachable_answer_503_with_retry_after(settings):
    no_database = settings.model_copy(
        update={
            "database_url": "postgresql://postgres@127.0.0.1:1/tgops",
            "database_connect_timeout_sec": 0.5,
        }
    )
    async with public_api(no_database) as api:
        listed = await api.client.get(GROUPS, headers={"X-API-Key": "tgk_any"})
        sent = await api.client.post(
            SEND, json={"content": {"type": "text", "text": "x"}}, headers={"X-API-Key": "k"}
        )

    for response in (listed, sent):
        assert response.status_code == 503 and response.headers["Retry-After"] == "5"
        assert response.json()["detail"] == "the database is unavailable; nothing was changed, retry later"
    assert api.queues.sent == []


# --- groups ----------------------------------------------------------------------------------


async def test_a_created_group_is_read_back_with_its_defaults(api):
    created = await api.client.post(GROUPS, json={"chat_id": -1001234567890, "title": "Live chat"})

    assert created.status_code == 201
    group = created.json()
    assert group["chat_id"] == -1001234567890 and group["title"] == "Live chat"
    assert group["is_active"] is True and group["final_message_allowed"] is True
    assert group["chat_type"] == "supergroup" and group["consecutive_failures"] == 0
    fetched = await api.client.get(f"{GROUPS}/{group['id']}")
    assert fetched.status_code == 200 and fetched.json() == group


async def test_a_second_group_with_the_same_chat_is_a_conflict_naming_the_first(api):
    first = (await api.client.post(GROUPS, json={"chat_id": -100500})).json()
    second = await api.client.post(GROUPS, json={"chat_id": -100500, "title": "again"})

    assert second.status_code == 409
    assert (
        second.json()["detail"] == f"a managed group with chat_id -100500 already exists (id {first['id']})"
    )


@pytest.mark.parametrize(
    "payload",
    [
        {"chat_id": 5},  # a private chat is no group
        {"chat_id": 0},
        {"chat_id": -100, "username": "@name"},
        {"chat_id": -100, "chat_type": "private"},
        {"chat_id": -100, "title": ""},
        {"chat_id": -100, "title": "a\u0000"},
        {"chat_id": -100, "invite_link": "javascript:alert(1)"},
        {"chat_id": -100, "phase": "monitoring"},
        {"title": "no chat"},
    ],
)
async def test_invalid_groups_are_refused(api, payload):
    response = await api.client.post(GROUPS, json=payload)
    assert response.status_code == 422
    assert (await api.client.get(GROUPS)).json()["total"] == 0


async def test_patch_changes_only_the_named_fields_and_can_clear_a_nullable_one(api):
    group = (
        await api.client.post(GROUPS, json={"chat_id": -7, "title": "Old", "username": "live_group"})
    ).json()

    patched = await api.client.patch(
        f"{GROUPS}/{group['id']}", json={"title": "New", "username": None, "final_message_allowed": False}
    )

    assert patched.status_code == 200
    body = patched.json()
    assert (body["title"], body["username"], body["final_message_allowed"]) == ("New", None, False)
    assert body["is_active"] is True and body["chat_type"] == "supergroup"
    assert body["updated_at"] > group["updated_at"]


@pytest.mark.parametrize(
    "payload", [{}, {"chat_type": None}, {"is_active": None}, {"chat_id": -8}, {"title": "   "}]
)
async def test_patch_refuses_nothing_to_change_nulls_in_required_fields_and_unknown_fields(api, payload):
    group = (await api.client.post(GROUPS, json={"chat_id": -7, "title": "Kept"})).json()
    response = await api.client.patch(f"{GROUPS}/{group['id']}", json=payload)
    assert response.status_code == 422
    assert (await api.client.get(f"{GROUPS}/{group['id']}")).json() == group


async def test_reactivating_a_group_clears_its_failure_streak(api, database_url):
    group = (await api.client.post(GROUPS, json={"chat_id": -9})).json()
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(
            "UPDATE managed_groups SET is_active = false, consecutive_failures = 3 WHERE id = %s",
            (group["id"],),
        )

    renamed = (await api.client.patch(f"{GROUPS}/{group['id']}", json={"title": "still off"})).json()
    reactivated = (await api.client.patch(f"{GROUPS}/{group['id']}", json={"is_active": True})).json()

    assert renamed["consecutive_failures"] == 3 and renamed["is_active"] is False
    assert reactivated["consecutive_failures"] == 0 and reactivated["is_active"] is True


async def test_delete_deactivates_and_keeps_the_row(api):
    group = (await api.client.post(GROUPS, json={"chat_id": -11})).json()

    deleted = await api.client.delete(f"{GROUPS}/{group['id']}")
    again = await api.client.delete(f"{GROUPS}/{group['id']}")

    assert deleted.status_code == 200 and deleted.json()["is_active"] is False
    assert again.status_code == 200 and again.json()["updated_at"] == deleted.json()["updated_at"]
    assert (await api.client.get(f"{GROUPS}/{group['id']}")).json()["is_active"] is False


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
async def test_an_unknown_group_is_404_with_a_reason(api, method):
    kwargs = {"json": {"title": "x"}} if method == "patch" else {}
    response = await getattr(api.client, method)(f"{GROUPS}/424242", **kwargs)
    assert response.status_code == 404 and response.json()["detail"] == "no managed group with id 424242"


@pytest.mark.parametrize("group_id", ["0", "-1", str(2**63), "abc"])
async def test_an_impossible_group_id_is_422(api, group_id):
    assert (await api.client.get(f"{GROUPS}/{group_id}")).status_code == 422


async def test_the_list_pages_by_cursor_and_filters_on_the_active_flag(api):
    ids = [(await api.client.post(GROUPS, json={"chat_id": -100 - n})).json()["id"] for n in range(5)]
    await api.client.delete(f"{GROUPS}/{ids[1]}")

    pages, cursor = [], 0
    while cursor is not None:
        page = (await api.client.get(GROUPS, params={"limit": 2, "after_id": cursor})).json()
        assert page["total"] == 5
        pages.append([group["id"] for group in page["items"]])
        cursor = page["next_cursor"]
    active = (await api.client.get(GROUPS, params={"is_active": "true"})).json()
    inactive = (await api.client.get(GROUPS, params={"is_active": "false"})).json()

    assert pages == [ids[0:2], ids[2:4], ids[4:5]]
    assert [group["id"] for group in active["items"]] == [ids[0], *ids[2:]] and active["total"] == 4
    assert [group["id"] for group in inactive["items"]] == [ids[1]] and inactive["next_cursor"] is None


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 201}, {"after_id": -1}, {"is_active": "maybe"}])
async def test_bad_list_parameters_are_422(api, params):
    assert (await api.client.get(GROUPS, params=params)).status_code == 422


async def test_the_openapi_schema_documents_every_public_operation_with_typed_models(api):
    schema = (await api.client.get("/openapi.json")).json()
    operations = {
        ("post", "/api/send_messages"): "202",
        ("get", "/api/groups"): "200",
        ("post", "/api/groups"): "201",
        ("get", "/api/groups/{group_id}"): "200",
        ("patch", "/api/groups/{group_id}"): "200",
        ("delete", "/api/groups/{group_id}"): "200",
    }
    for (method, path), success in operations.items():
        operation = schema["paths"][path][method]
        assert "$ref" in operation["responses"][success]["content"]["application/json"]["schema"]
        assert {"401", "429"} <= set(operation["responses"])
        assert operation["security"] == [{"APIKeyHeader": []}]
    assert schema["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"


async def test_a_wrong_method_is_405_naming_every_method_of_the_path(api):
    response = await api.client.put(f"{GROUPS}/1", json={})
    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, GET, PATCH"
