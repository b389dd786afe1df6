"""PUT and GET /api/live_streams: an outside checker publishes who is live; the DM bot lists it."""

from __future__ import annotations

from tests.api.public_api_support import public_api
from tgops.api.api_keys import create_api_key


async def headers(api) -> dict[str, str]:
    key = await create_api_key(await api.runtime.database(), "live checker")
    return {"X-API-Key": key.key}


async def test_replace_publishes_exactly_the_given_streams_and_upsert_adds_to_them(settings):
    async with public_api(settings) as api:
        auth = await headers(api)
        first = {
            "streams": [{"username": "ann", "title": "hi"}, {"username": "bob", "url": "https://x.test/bob"}]
        }
        response = await api.client.put("/api/live_streams", json=first, headers=auth)
        assert response.status_code == 200, response.text
        assert response.json() == {"mode": "replace", "published": 2}

        await api.client.put("/api/live_streams", json={"streams": [{"username": "cid"}]}, headers=auth)
        await api.client.put(
            "/api/live_streams", json={"mode": "upsert", "streams": [{"username": "dee"}]}, headers=auth
        )
        live = (await api.client.get("/api/live_streams", headers=auth)).json()["items"]
        everyone = (await api.client.get("/api/live_streams?live_only=false", headers=auth)).json()["items"]

    assert sorted(item["username"] for item in live) == ["cid", "dee"]
    assert {item["username"]: item["is_live"] for item in everyone} == {
        "ann": False, "bob": False, "cid": True, "dee": True,
    }  # fmt: skip


async def test_a_bad_stream_or_no_key_is_refused_with_a_reason(settings):
    async with public_api(settings) as api:
        auth = await headers(api)
        bad = await api.client.put("/api/live_streams", json={"streams": [{"username": "x", "url": "ftp://no"}]},
                                   headers=auth)  # fmt: skip
        anonymous = await api.client.get("/api/live_streams")

    assert bad.status_code == 422 and "url" in bad.text
    assert anonymous.status_code == 401
