"""The group rules through the public API: PATCH /api/groups/{id} sets the phase and its rules, the join
policy, the removal rule and the admin account; POST /api/groups/{id}/kick_rule/confirm confirms a
removal rule after its preview. Bad input is a 422 (an unknown account or contradicting rules a 409)
with a reason and changes nothing."""

from __future__ import annotations

import pytest

from tests.api.public_api_support import public_api
from tgops.api.api_keys import create_api_key
from tgops.telegram.accounts import MtprotoAccounts

GROUPS = "/api/groups"


@pytest.fixture
async def api(settings, db):
    created = await create_api_key(db, "tests")
    async with public_api(settings) as api:
        api.client.headers["X-API-Key"] = created.key
        yield api


@pytest.fixture
async def group(api) -> dict:
    return (await api.client.post(GROUPS, json={"chat_id": -1001234, "title": "Live"})).json()


async def fleet_account(db) -> int:
    return await MtprotoAccounts(db).add(phone="+15557770000", session_encrypted=None, probe=False)


async def test_the_rules_are_set_read_back_and_a_new_removal_rule_starts_unconfirmed(api, db, group):
    account_id = await fleet_account(db)
    rules = {
        "phase": "monitoring",
        "phase_rules": {"monitoring_at_members": 500, "growth_below_members": 400},
        "growth_join_action": "approve",
        "monitoring_join_action": "decline",
        "decision_interval_sec": 2.5,
        "kick_rule": {"inactive_days": 30, "allow_user_ids": [42, 43]},
        "admin_account_id": account_id,
    }

    patched = await api.client.patch(f"{GROUPS}/{group['id']}", json=rules | {"title": "Renamed"})

    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body == (await api.client.get(f"{GROUPS}/{group['id']}")).json()
    assert body["title"] == "Renamed" and body["phase"] == "monitoring" and body["phase_changed_at"]
    assert body["phase_rules"] == {"monitoring_at_members": 500, "growth_below_members": 400}
    assert (body["growth_join_action"], body["monitoring_join_action"]) == ("approve", "decline")
    assert body["decision_interval_sec"] == 2.5 and body["admin_account_id"] == account_id
    assert body["kick_rule"] == {"inactive_days": 30, "allow_user_ids": [42, 43], "confirmed": False}


async def test_a_decision_interval_finer_than_a_millisecond_is_rounded_not_a_server_error(api, group):
    response = await api.client.patch(f"{GROUPS}/{group['id']}", json={"decision_interval_sec": 5.3e-172})

    assert response.status_code == 200 and response.json()["decision_interval_sec"] == 0


async def test_null_clears_the_nullable_rules(api, db, group):
    account_id = await fleet_account(db)
    url = f"{GROUPS}/{group['id']}"
    await api.client.patch(
        url,
        json={"kick_rule": {"inactive_days": 9}, "admin_account_id": account_id, "decision_interval_sec": 1},
    )

    body = (
        await api.client.patch(
            url, json={"kick_rule": None, "admin_account_id": None, "decision_interval_sec": None}
        )
    ).json()

    assert (body["kick_rule"], body["admin_account_id"], body["decision_interval_sec"]) == (None, None, None)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"phase": "paused"}, "phase"),
        ({"phase": None}, "phase"),
        ({"phase_rules": None}, "phase_rules"),
        ({"phase_rules": {"monitoring_at_members": -1}}, "monitoring_at_members"),
        ({"phase_rules": {"members": 5}}, "members"),
        ({"phase_rules": {"monitoring_at_members": "100"}}, "monitoring_at_members"),
        ({"growth_join_action": "maybe"}, "growth_join_action"),
        ({"monitoring_join_action": None}, "monitoring_join_action"),
        ({"decision_interval_sec": -1}, "decision_interval_sec"),
        ({"decision_interval_sec": True}, "decision_interval_sec"),
        ({"decision_interval_sec": "1"}, "decision_interval_sec"),
        ({"decision_interval_sec": 10**9}, "decision_interval_sec"),
        ({"kick_rule": {"inactive_days": 0}}, "inactive_days"),
        ({"kick_rule": {"allow_user_ids": [1]}}, "inactive_days"),
        ({"kick_rule": {"inactive_days": 30, "allow_user_ids": ["42"]}}, "allow_user_ids"),
        ({"kick_rule": {"inactive_days": 30, "allow_user_ids": [-5]}}, "allow_user_ids"),
        ({"kick_rule": {"inactive_days": 30, "confirmed": True}}, "confirmed"),  # only through confirm
        ({"admin_account_id": 0}, "admin_account_id"),
        ({"admin_account_id": "1"}, "admin_account_id"),
        ({"admin_account_id": 2**53 + 1}, "admin_account_id"),
    ],
)
async def test_bad_rules_are_422_with_a_reason_and_change_nothing(api, group, payload, reason):
    response = await api.client.patch(f"{GROUPS}/{group['id']}", json=payload)

    assert response.status_code == 422
    assert reason in response.text
    assert (await api.client.get(f"{GROUPS}/{group['id']}")).json() == group


async def test_phase_rules_that_would_flap_are_409_with_the_reason(api, group):
    rules = {"monitoring_at_members": 100, "growth_below_members": 200}
    response = await api.client.patch(f"{GROUPS}/{group['id']}", json={"phase_rules": rules})

    assert response.status_code == 409 and "flap" in response.json()["detail"]
    assert (await api.client.get(f"{GROUPS}/{group['id']}")).json() == group


async def test_an_unknown_admin_account_is_409_and_nothing_of_the_request_is_written(api, group):
    response = await api.client.patch(
        f"{GROUPS}/{group['id']}", json={"title": "not written", "admin_account_id": 999999}
    )

    assert response.status_code == 409
    assert response.json()["detail"] == "no fleet account with id 999999"
    assert (await api.client.get(f"{GROUPS}/{group['id']}")).json() == group


async def test_a_removal_rule_is_confirmed_only_after_its_preview_and_a_new_rule_needs_a_new_one(
    api, db, group
):
    url = f"{GROUPS}/{group['id']}"
    confirm = f"{url}/kick_rule/confirm"
    no_rule = await api.client.post(confirm)
    await api.client.patch(url, json={"kick_rule": {"inactive_days": 30}})
    before_preview = await api.client.post(confirm)
    await db.execute("group_kick_checked", {"chat_id": group["chat_id"]})  # what a preview run records

    confirmed = await api.client.post(confirm)
    changed = (await api.client.patch(url, json={"kick_rule": {"inactive_days": 60}})).json()

    assert no_rule.status_code == 409 and "no removal rule" in no_rule.json()["detail"]
    assert before_preview.status_code == 409 and "preview" in before_preview.json()["detail"]
    assert confirmed.status_code == 200 and confirmed.json()["kick_rule"]["confirmed"] is True
    assert changed["kick_rule"] == {"inactive_days": 60, "allow_user_ids": [], "confirmed": False}
    assert changed["kick_checked_at"] is None
    assert (await api.client.post(confirm)).status_code == 409


async def test_an_unknown_group_is_404_for_rules_and_confirmation(api):
    assert (await api.client.patch(f"{GROUPS}/424242", json={"phase": "growth"})).status_code == 404
    assert (await api.client.post(f"{GROUPS}/424242/kick_rule/confirm")).status_code == 404


async def test_confirmation_needs_the_api_key(api, group):
    del api.client.headers["X-API-Key"]
    response = await api.client.post(f"{GROUPS}/{group['id']}/kick_rule/confirm")
    assert response.status_code == 401
